/**
 * The cluster's Slurm as fleet derives it (docs/slurm.md): slurm.conf from
 * fleet.yaml and the nodes' reported inventory, the munge key generated once
 * and kept sealed in the store, both delivered in GetConfig's cluster_json.
 */
export {
  MEMORY_RESERVE,
  SLURMCTLD_PORT,
  SLURMD_PORT,
  SLURMD_SPOOL_DIR,
  SLURM_USER,
  STATE_SAVE_LOCATION,
  nodeResources,
  renderSlurmConf,
  type ReportedResources,
  type Resources,
  type SlurmComputeNode,
  type SlurmConfInput,
  type SlurmHost,
} from './conf.js';
export { MUNGE_KEY_BYTES, MUNGE_KEY_SECRET, REDACTED, deriveSlurmConf, generateMungeKeyB64, redactSlurmSecrets, type SlurmClusterNode, type SlurmDerivation, type SlurmFactsJson } from './facts.js';
