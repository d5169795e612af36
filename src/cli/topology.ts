/** The host topology readers, where the CLI verbs and its unit tests import them from. */
export { cpuList, cpuRanges, pciNumaNode, readTopology, type CpuTopology, type NumaNodeInfo } from '../gpu/topology.js';
