/** The fleet boot environment (docs/bootenv.md): build, store and the pure parts. */
export { bootenvPaths, bootenvPrerequisites, buildBootenv, currentBootenv, hostKernels, type BootenvBuild } from './build.js';
export { formatBootenv, parseCmdline, renderCmdline, type BootenvManifest } from './spec.js';
