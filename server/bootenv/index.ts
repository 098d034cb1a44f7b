/** The fleet boot environment (docs/bootenv.md): build, store and the pure parts. */
export { bootenvPrerequisites, buildBootenv, currentBootenv, hostKernels, type BootenvBuild } from './build.js';
export { bootenvPaths, cmdlineArgs, formatBootenv, parseCmdline, renderCmdline, type BootenvManifest, type BootenvPaths } from './spec.js';
