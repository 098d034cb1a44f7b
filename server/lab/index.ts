/** The fleet lab: VMs with IPMI BMCs on an isolated network, and the stand-in installer they install with (docs/lab.md). */
export { labDown, labKillSync, labPassword, labPrerequisites, labStatus, labUp, readLabState, renderLabConfig, labAdminUrl, fleetSourceRoot, labNodeAddresses, LAB_GATEWAY, LAB_SUBNET } from './lab.js';
export type { LabDownResult, LabNode, LabNodeStatus, LabState, LabStatus, LabUpOptions } from './lab.js';
export { buildLabImages, labImagePrerequisites, renderAgentWrapper, RUNTIME_MOUNT, RUNTIME_TAG, SOURCE_MOUNT, SOURCE_TAG } from './images.js';
export type { LabImageOptions, LabImages } from './images.js';
export { labIpmitool } from './bmc.js';
export { vmHook, vmPowerState, vmNextBoot, qemuArgs } from './vm.js';
export { DEFAULT_LAB_DIR, LAB_READY_LINE, labPaths, labServerPid, placeImages, runInLab, startLabServer, stopLabServer, type LabPaths } from './server.js';
