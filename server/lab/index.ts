/** The fleet lab: VMs with IPMI BMCs on an isolated network, installed with a real Debian image by fleet's boot environment (docs/lab.md). */
export { defaultFirmware, LAB_MAX_RACKED, labPowerOnRacked, labDown, labKillSync, labPassword, labPrerequisites, labStatus, labUp, readLabState, renderLabConfig, labAdminUrl, fleetSourceRoot, labNodeAddresses, LAB_GATEWAY, LAB_SUBNET } from './lab.js';
export type { LabDownResult, LabNode, LabNodeStatus, LabState, LabStatus, LabUpOptions } from './lab.js';
export { LAB_IMAGE_FROM, prepareLabOs, type LabOs, type LabOsOptions } from './os.js';
export { labIpmitool } from './bmc.js';
export { vmHook, vmPowerState, vmNextBoot, qemuArgs, type Firmware } from './vm.js';
export { DEFAULT_LAB_DIR, LAB_DATA_KEPT, LAB_READY_LINE, labPaths, labServerPid, labSsh, resetLabData, runInLab, startLabServer, stopLabServer, type LabPaths } from './server.js';
