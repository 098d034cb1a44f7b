/** fleet's own man page sections; the renderer is common/man.ts (shared with fleet-agent's page). */
import type { ManSection } from '../../common/man.js';

export { commandPaths, manPage, roffEscape, type ManOptions, type ManSection } from '../../common/man.js';

export const FLEET_EXTRA: ManSection[] = [
  {
    title: 'Nodesets and groups',
    paragraphs: [
      'A nodeset argument takes clustershell syntax: ranges (valkyrie[01-32]), and the operators , (union), ! (difference), & (intersection) and ^ (symmetric difference), evaluated left to right.',
      'It also takes node groups: @name for a group of fleet.yaml groups: or of its groups_file (a clustershell groups.d/local.cfg, read at fleet apply), @profile:NAME for the nodes of a profile. Groups mix with names and operators:',
      '  fleet reinstall @compute!valkyrie01\n  fleet power status @rack1&@profile:gpu\n  fleet nodeset -e @gpu\n  fleet nodeset -ll',
      'An unknown group is a usage error (exit 2) with the closest name. fleet nodeset -l lists the groups, -L every source, -s profile the profiles.',
    ],
  },
  {
    title: 'Exit status',
    paragraphs: ['0: done. 1: failed (a node missing from the store, an action that failed, the server unreachable). 2: bad usage, a bad nodeset or an unknown group, a fleet.yaml with errors.'],
  },
  {
    title: 'Environment',
    paragraphs: ['FLEET_URL, FLEET_TOKEN, FLEET_TOKEN_FILE, FLEET_DATA, FLEET_CA_FILE: the defaults of the options of the same names.'],
  },
];
