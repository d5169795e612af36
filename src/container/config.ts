/**
 * ContainerConfig: what a container should be, validated once at build() time. Every
 * invalid field is reported together in one ConfigError.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, posix } from 'node:path';
import { ConfigError, Problems } from '../errors.js';
import { ImageStore } from '../images.js';
import { Personality } from '../personality/personality.js';
import type { PersonalityTraits } from '../personality/traits.js';
import { SecurityProfile, type SecurityOptions } from '../secure-runtime/index.js';

export interface VolumeSpec {
  /** Host path (must exist). */
  source: string;
  /** Absolute path inside the container. */
  target: string;
  readOnly?: boolean;
}

/** none: own network namespace with loopback only (default); host: the host's network. */
export type NetworkMode = 'none' | 'host' | 'bridge';

export interface ResourceSpec {
  cpuLimit?: number; // cores
  cpuWeight?: number; // 1..10000
  memoryLimit?: number; // bytes
  memorySwap?: number; // memory + swap, bytes
  memoryReservation?: number; // bytes
  pidsLimit?: number;
  cpusetCpus?: string;
  cpusetMems?: string;
  diskIops?: number; // read and write IOPS on the rootfs device
  diskBps?: number; // read and write bytes/s on the rootfs device
  networkBandwidth?: number; // Mbps, ingress and egress (bridge network)
  gpuCount?: number;
  gpuDevices?: number[];
}

export interface HardwareAffinitySpec {
  cpuCores?: number[];
  gpuDevice?: number;
  numaNode?: number;
  preferLocalMemory?: boolean;
}

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
  cpuset(): { cpus?: string; mems?: string } {
    const cpus = this.cpus();
    return { cpus: cpus?.join(','), mems: undefined };
  }

  /** The CPUs: those given, else those of the NUMA node (from sysfs). */
  cpus(sysNodeDir = '/sys/devices/system/node'): number[] | undefined {
    if (this.spec.cpuCores?.length) return [...this.spec.cpuCores].sort((a, b) => a - b);
    if (this.spec.numaNode === undefined) return undefined;
    try {
      return parseCpuList(readFileSync(`${sysNodeDir}/node${this.spec.numaNode}/cpulist`, 'utf8'));
    } catch {
      return undefined;
    }
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
    return new HardwareAffinity(Object.freeze({ ...spec }));
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

export interface ContainerSpec {
  name: string;
  image: string;
  personality: Personality;
  command?: string[];
  args: string[];
  env: Record<string, string>;
  workingDir?: string;
  /** "uid", "uid:gid", "name" or "name:group", resolved against the image's /etc/passwd. */
  user?: string;
  hostname?: string;
  volumes: VolumeSpec[];
  network: NetworkMode;
  terminal: false;
  resources: ResourceSpec;
  /** Security settings (secure-runtime); undefined means the default profile. */
  security?: SecurityProfile | SecurityOptions;
  labels: Record<string, string>;
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;
const HOSTNAME_RE = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;
const ENV_KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const USER_RE = /^[a-z_][a-z0-9_.-]*$|^\d+$/i;
const CPUSET_RE = /^\d+(-\d+)?(,\d+(-\d+)?)*$/;

/** Container paths a volume may not cover: the kernel's views the runtime mounts itself. */
const RESERVED_TARGETS = ['/proc', '/sys', '/dev'];

export class ContainerConfig {
  readonly spec: Readonly<ContainerSpec>;
  private affinity: HardwareAffinity | undefined;

  private constructor(spec: ContainerSpec, affinity?: HardwareAffinity) {
    this.spec = Object.freeze(spec);
    this.affinity = affinity;
  }

  static builder(): ContainerConfigBuilder {
    return new ContainerConfigBuilder();
  }

  /** @internal Rebuilds a config from its stored spec (state.json). */
  static fromSpec(spec: ContainerSpec & { personality: unknown }, affinity?: HardwareAffinitySpec): ContainerConfig {
    const b = new ContainerConfigBuilder();
    b.load(spec);
    if (affinity) b.hardwareAffinity(HardwareAffinity.make(affinity));
    return b.build();
  }

  get name(): string {
    return this.spec.name;
  }

  hardwareAffinity(): HardwareAffinity | undefined {
    return this.affinity;
  }

  setHardwareAffinity(affinity: HardwareAffinity): void {
    this.affinity = affinity;
  }

  /** Plain data for state.json. */
  toJSON(): Record<string, unknown> {
    return {
      ...this.spec,
      personality: { name: this.spec.personality.name, traits: { ...this.spec.personality.traits() } },
      hardwareAffinity: this.affinity?.spec,
    };
  }
}

export class ContainerConfigBuilder {
  private s: Partial<ContainerSpec> & { args: string[]; env: Record<string, string>; volumes: VolumeSpec[]; resources: ResourceSpec; labels: Record<string, string> } = {
    args: [],
    env: {},
    volumes: [],
    resources: {},
    labels: {},
  };
  private affinity: HardwareAffinity | undefined;
  private terminalRequested = false;

  /** @internal */
  load(spec: ContainerSpec & { personality: unknown }): this {
    const p = spec.personality as { name?: string; traits?: PersonalityTraits } | Personality;
    let personality: Personality | undefined;
    if (p instanceof Personality) personality = p;
    else if (p?.name && Personality.presets.some((x) => x.name === p.name)) personality = Personality.presets.find((x) => x.name === p.name);
    else if (p?.traits) personality = Personality.custom(p.traits);
    this.s = {
      ...spec,
      personality,
      args: [...spec.args],
      env: { ...spec.env },
      volumes: spec.volumes.map((v) => ({ ...v })),
      resources: { ...spec.resources },
      labels: { ...spec.labels },
    };
    return this;
  }

  name(name: string): this {
    this.s.name = name;
    return this;
  }
  image(ref: string): this {
    this.s.image = ref;
    return this;
  }
  personality(p: Personality): this {
    this.s.personality = p;
    return this;
  }
  /** The program and its arguments; overrides the image's default command. */
  command(argv: string[]): this {
    this.s.command = [...argv];
    return this;
  }
  args(args: string[]): this {
    this.s.args = [...args];
    return this;
  }
  env(vars: Record<string, string>): this {
    Object.assign(this.s.env, vars);
    return this;
  }
  workingDir(dir: string): this {
    this.s.workingDir = dir;
    return this;
  }
  user(user: string | number): this {
    this.s.user = String(user);
    return this;
  }
  hostname(name: string): this {
    this.s.hostname = name;
    return this;
  }
  volume(v: VolumeSpec): this {
    this.s.volumes.push({ ...v });
    return this;
  }
  volumes(vs: VolumeSpec[]): this {
    for (const v of vs) this.volume(v);
    return this;
  }
  network(mode: NetworkMode): this {
    this.s.network = mode;
    return this;
  }
  /** Terminals are not supported yet: only `false` is accepted. */
  terminal(on: boolean): this {
    this.terminalRequested = on;
    return this;
  }
  cpuLimit(cores: number): this {
    this.s.resources.cpuLimit = cores;
    return this;
  }
  cpuWeight(weight: number): this {
    this.s.resources.cpuWeight = weight;
    return this;
  }
  memoryLimit(bytes: number): this {
    this.s.resources.memoryLimit = bytes;
    return this;
  }
  memorySwap(bytes: number): this {
    this.s.resources.memorySwap = bytes;
    return this;
  }
  memoryReservation(bytes: number): this {
    this.s.resources.memoryReservation = bytes;
    return this;
  }
  pidsLimit(n: number): this {
    this.s.resources.pidsLimit = n;
    return this;
  }
  cpusetCpus(cpus: string): this {
    this.s.resources.cpusetCpus = cpus;
    return this;
  }
  cpusetMems(mems: string): this {
    this.s.resources.cpusetMems = mems;
    return this;
  }
  diskIops(iops: number): this {
    this.s.resources.diskIops = iops;
    return this;
  }
  diskBps(bps: number): this {
    this.s.resources.diskBps = bps;
    return this;
  }
  networkBandwidth(mbps: number): this {
    this.s.resources.networkBandwidth = mbps;
    return this;
  }
  gpuCount(n: number): this {
    this.s.resources.gpuCount = n;
    return this;
  }
  gpuDevices(indexes: number[]): this {
    this.s.resources.gpuDevices = [...indexes];
    return this;
  }
  security(profile: SecurityProfile | SecurityOptions): this {
    this.s.security = profile;
    return this;
  }
  label(key: string, value: string): this {
    this.s.labels[key] = value;
    return this;
  }
  hardwareAffinity(a: HardwareAffinity): this {
    this.affinity = a;
    return this;
  }

  build(): ContainerConfig {
    const p = new Problems();
    const s = this.s;
    if (s.name === undefined) p.add('name', 'is required');
    else if (!NAME_RE.test(s.name)) p.add('name', `expected [a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}, got "${s.name}"`);
    if (s.image === undefined) p.add('image', 'is required');
    else if (!ImageStore.validRef(s.image.replace(/^[^/]+\.[^/]+\//, ''))) p.add('image', `not an image reference: "${s.image}"`);
    if (s.command !== undefined) {
      if (s.command.length === 0) p.add('command', 'must not be empty');
      s.command.forEach((a, i) => typeof a !== 'string' || a.includes('\0') ? p.add(`command[${i}]`, 'must be a string without NUL bytes') : undefined);
    }
    s.args.forEach((a, i) => (typeof a !== 'string' || a.includes('\0') ? p.add(`args[${i}]`, 'must be a string without NUL bytes') : undefined));
    for (const [k, v] of Object.entries(s.env)) {
      if (!ENV_KEY_RE.test(k)) p.add(`env.${k}`, 'is not a valid variable name');
      if (typeof v !== 'string' || v.includes('\0')) p.add(`env.${k}`, 'value must be a string without NUL bytes');
    }
    if (s.workingDir !== undefined && (!posix.isAbsolute(s.workingDir) || s.workingDir.includes('\0'))) {
      p.add('workingDir', `expected an absolute path, got "${s.workingDir}"`);
    }
    if (s.user !== undefined) {
      const parts = s.user.split(':');
      if (parts.length > 2 || parts.some((x) => !USER_RE.test(x))) p.add('user', `expected uid, uid:gid, name or name:group, got "${s.user}"`);
      else if (parts.some((x) => /^\d+$/.test(x) && Number(x) > 0xfffffffe)) p.add('user', 'uid/gid out of range');
    }
    if (s.hostname !== undefined && (!HOSTNAME_RE.test(s.hostname) || s.hostname.length > 64)) {
      p.add('hostname', `not a valid hostname: "${s.hostname}"`);
    }
    s.volumes.forEach((v, i) => {
      if (typeof v.source !== 'string' || !isAbsolute(v.source) || v.source.includes('\0')) p.add(`volumes[${i}].source`, `expected an absolute host path, got ${JSON.stringify(v.source)}`);
      if (typeof v.target !== 'string' || !posix.isAbsolute(v.target) || v.target.includes('\0')) {
        p.add(`volumes[${i}].target`, `expected an absolute container path, got ${JSON.stringify(v.target)}`);
      } else {
        const t = posix.normalize(v.target);
        if (v.target.split('/').includes('..')) p.add(`volumes[${i}].target`, 'must not contain ".."');
        else if (t === '/') p.add(`volumes[${i}].target`, 'cannot replace the root');
        else if (RESERVED_TARGETS.some((r) => t === r || t.startsWith(`${r}/`))) {
          p.add(`volumes[${i}].target`, `mounts over ${t} are refused: the runtime owns /proc, /sys and /dev`);
        }
      }
    });
    const net = s.network ?? 'none';
    if (!['none', 'host', 'bridge'].includes(net)) p.add('network', `expected none, host or bridge, got "${net}"`);
    if (this.terminalRequested) p.add('terminal', 'terminals are not supported; stdout and stderr go to the container log');
    const r = s.resources;
    const positive = (field: string, v: number | undefined, max = Number.MAX_SAFE_INTEGER) => {
      if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > max)) p.add(field, `expected a number in (0, ${max}], got ${v}`);
    };
    const integer = (field: string, v: number | undefined, min: number, max: number) => {
      if (v !== undefined && (!Number.isInteger(v) || v < min || v > max)) p.add(field, `expected an integer in [${min}, ${max}], got ${v}`);
    };
    positive('cpuLimit', r.cpuLimit, 4096);
    if (r.cpuLimit !== undefined && r.cpuLimit > 0 && r.cpuLimit < 0.01) p.add('cpuLimit', `must be at least 0.01 cores, got ${r.cpuLimit}`);
    integer('cpuWeight', r.cpuWeight, 1, 10000);
    integer('memoryLimit', r.memoryLimit, 4 * 1024 * 1024, Number.MAX_SAFE_INTEGER);
    integer('memorySwap', r.memorySwap, 4 * 1024 * 1024, Number.MAX_SAFE_INTEGER);
    integer('memoryReservation', r.memoryReservation, 1, Number.MAX_SAFE_INTEGER);
    if (r.memorySwap !== undefined && r.memoryLimit !== undefined && r.memorySwap < r.memoryLimit) p.add('memorySwap', 'must be ≥ memoryLimit (it counts memory plus swap)');
    if (r.memorySwap !== undefined && r.memoryLimit === undefined) p.add('memorySwap', 'needs memoryLimit');
    integer('pidsLimit', r.pidsLimit, 1, 4194304);
    if (r.cpusetCpus !== undefined && !CPUSET_RE.test(r.cpusetCpus)) p.add('cpusetCpus', `expected a list like "0-3,6", got "${r.cpusetCpus}"`);
    if (r.cpusetMems !== undefined && !CPUSET_RE.test(r.cpusetMems)) p.add('cpusetMems', `expected a list like "0", got "${r.cpusetMems}"`);
    integer('diskIops', r.diskIops, 1, 10_000_000);
    integer('diskBps', r.diskBps, 1, Number.MAX_SAFE_INTEGER);
    positive('networkBandwidth', r.networkBandwidth, 400_000);
    if (r.networkBandwidth !== undefined && net !== 'bridge') p.add('networkBandwidth', 'needs network "bridge" (there is no link to shape otherwise)');
    integer('gpuCount', r.gpuCount, 0, 64);
    r.gpuDevices?.forEach((g, i) => integer(`gpuDevices[${i}]`, g, 0, 63));
    if (r.gpuDevices && r.gpuCount !== undefined && r.gpuCount !== r.gpuDevices.length) p.add('gpuCount', 'disagrees with the number of gpuDevices');
    for (const k of Object.keys(s.labels)) if (!k || k.includes('\0')) p.add(`labels.${k}`, 'invalid label key');
    if (s.security !== undefined && !(s.security instanceof SecurityProfile)) SecurityProfile.check(s.security, 'security', p);
    p.throwIfAny('invalid container configuration');
    const spec: ContainerSpec = {
      name: s.name!,
      image: s.image!,
      personality: s.personality ?? Personality.Balanced,
      command: s.command,
      args: s.args,
      env: s.env,
      workingDir: s.workingDir,
      user: s.user,
      hostname: s.hostname,
      volumes: s.volumes,
      network: net as NetworkMode,
      terminal: false,
      resources: r,
      security: s.security,
      labels: s.labels,
    };
    return new (ContainerConfig as unknown as new (s: ContainerSpec, a?: HardwareAffinity) => ContainerConfig)(spec, this.affinity);
  }
}

export { ConfigError };
