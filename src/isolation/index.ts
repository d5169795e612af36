/** Resource isolation with cgroups: v1, v2 and hybrid hosts behind one driver. */
export { CgroupDriver, type CgroupDriverOptions, type CreatedCgroup } from './driver.js';
export type { DeviceProgramLoader } from './write-plan.js';
export type { CgroupStats } from './backend.js';
export {
  CONTROLLERS,
  V2_NAME,
  detectCgroups,
  readCgroupLayout,
  parseMountinfo,
  hierarchies,
  type Binding,
  type CgroupLayout,
  type Controller,
  type DetectOptions,
  type MountEntry,
} from './layout.js';
export {
  CPU_PERIOD_US,
  UNLIMITED,
  resourceProblems,
  validateResources,
  type BlockIoLimit,
  type DeviceRule,
  type HugetlbLimit,
  type Resources,
} from './resources.js';
export {
  BPF_DEVICE_PROGRAM,
  RESOURCE_MAP,
  cpuQuotaUs,
  cpuWeightToShares,
  renderMappingTable,
  type MappingSide,
  type ResourceMapping,
  type Write,
} from './mapping.js';
export { DEFAULT_DEVICE_RULES, NVIDIA_MAJOR, nvidiaDeviceRules, parseProcDevices, parseV1DeviceLine, v1DeviceLine } from './devices.js';
export { blockDeviceFor, hostBlockProbe, splitDev, type BlockDeviceProbe } from './blockdev.js';
export { MemoryCgroupFs, type RecordedWrite, type WriteFault } from './memory-fs.js';
