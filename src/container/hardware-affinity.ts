/**
 * HardwareAffinity (the spec's): pinning to CPUs, a GPU and a NUMA node. Pure data and
 * arithmetic; the NUMA topology comes from the caller, never from sysfs here.
 */
import { ConfigError, Problems } from '../errors.js';

export interface HardwareAffinitySpec {
  cpuCores?: number[];
  gpuDevice?: number;
  numaNode?: number;
  preferLocalMemory?: boolean;
}

/** The CPUs of a NUMA node, from whatever reads the kernel (the prepare step's kernel interface). */
export type NodeCpuLookup = (node: number) => number[];

const MPOL_PREFERRED = 1;
const MPOL_BIND = 2;

/** "0-3,6" → [0, 1, 2, 3, 6] */
export function parseCpuList(text: string): number[] {
  const out: number[] = [];
  for (const part of text.trim().split(',').filter(Boolean)) {
    const [a, b] = part.split('-').map(Number) as [number, number | undefined];
    for (let c = a; c <= (b ?? a); c++) out.push(c);
  }
  return out;
}

export class NumaNode {
  constructor(readonly id: number) {}
}

/** Pinning to CPUs, a GPU and a NUMA node (the spec's HardwareAffinity). */
export class HardwareAffinity {
  private constructor(readonly spec: Readonly<HardwareAffinitySpec>) {}
  static builder(): HardwareAffinityBuilder {
    return new HardwareAffinityBuilder();
  }
  /** The cpuset cgroup this affinity asks for (CPUs only: memory placement is a policy). */
  cpuset(nodeCpus?: NodeCpuLookup): { cpus?: string; mems?: string } {
    const cpus = this.cpus(nodeCpus);
    return { cpus: cpus?.join(','), mems: undefined };
  }

  /**
   * The CPUs: those given, else those of the NUMA node as `nodeCpus` reports them. Only the
   * kernel seam reads sysfs, so the caller passes the lookup; a NUMA-only affinity without one
   * throws rather than silently leaving the container unpinned.
   */
  cpus(nodeCpus?: NodeCpuLookup): number[] | undefined {
    if (this.spec.cpuCores?.length) return [...this.spec.cpuCores].sort((a, b) => a - b);
    const node = this.spec.numaNode;
    if (node === undefined) return undefined;
    if (!nodeCpus) {
      throw new ConfigError('hardware affinity', [
        { field: 'numaNode', problem: `the CPUs of NUMA node ${node} are needed and no node CPU lookup was given` },
      ]);
    }
    return [...nodeCpus(node)];
  }

  /**
   * The memory policy for the NUMA node: preferLocalMemory (the default) prefers the node and
   * falls back to others under pressure (MPOL_PREFERRED); preferLocalMemory(false) binds to
   * it strictly (MPOL_BIND).
   */
  memoryPolicy(): { mode: number; nodes: number[] } | undefined {
    if (this.spec.numaNode === undefined) return undefined;
    return { mode: this.spec.preferLocalMemory === false ? MPOL_BIND : MPOL_PREFERRED, nodes: [this.spec.numaNode] };
  }

  /** @internal */
  static make(spec: HardwareAffinitySpec): HardwareAffinity {
    // The builder keeps its own arrays; the affinity must not see later changes to them.
    const own: HardwareAffinitySpec = { ...spec };
    if (spec.cpuCores !== undefined) own.cpuCores = Object.freeze([...spec.cpuCores]) as number[];
    return new HardwareAffinity(Object.freeze(own));
  }
}

export class HardwareAffinityBuilder {
  private s: HardwareAffinitySpec = {};
  cpuCores(cores: number[]): this {
    this.s.cpuCores = [...cores];
    return this;
  }
  gpuDevice(index: number): this {
    this.s.gpuDevice = index;
    return this;
  }
  numaNode(node: NumaNode | number): this {
    this.s.numaNode = typeof node === 'number' ? node : node.id;
    return this;
  }
  preferLocalMemory(on: boolean): this {
    this.s.preferLocalMemory = on;
    return this;
  }
  build(): HardwareAffinity {
    const p = new Problems();
    for (const [i, c] of (this.s.cpuCores ?? []).entries()) {
      if (!Number.isInteger(c) || c < 0 || c > 4095) p.add(`cpuCores[${i}]`, `expected a CPU number 0..4095, got ${c}`);
    }
    if (this.s.gpuDevice !== undefined && (!Number.isInteger(this.s.gpuDevice) || this.s.gpuDevice < 0)) {
      p.add('gpuDevice', `expected a GPU index ≥ 0, got ${this.s.gpuDevice}`);
    }
    if (this.s.numaNode !== undefined && (!Number.isInteger(this.s.numaNode) || this.s.numaNode < 0)) {
      p.add('numaNode', `expected a NUMA node ≥ 0, got ${this.s.numaNode}`);
    }
    p.throwIfAny('invalid hardware affinity');
    return HardwareAffinity.make(this.s);
  }
}
