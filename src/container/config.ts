/**
 * ContainerConfig: what a container should be, validated once at build() time. Every
 * invalid field is reported together in one ConfigError.
 */
import { ConfigError } from '../errors.js';
import { Personality } from '../personality/personality.js';
import type { PersonalityTraits } from '../personality/traits.js';
import type { SecurityOptions } from '../secure-runtime/profile-options.js';
import { SecurityProfile } from '../secure-runtime/profile.js';
import { checkSpec } from './config-checks.js';
import { deepCopy, deepFreeze } from './frozen.js';
import { HardwareAffinity, type HardwareAffinitySpec } from './hardware-affinity.js';

export interface VolumeSpec {
  /** Host path (must exist). */
  source: string;
  /** Absolute path inside the container. */
  target: string;
  readOnly?: boolean;
  /**
   * With a user namespace, the volume is an idmapped mount (default true): host uid N is
   * container uid N both ways, so container root reads and writes root-owned host files as
   * root. `false` keeps the plain mapping: host files show as owned by their id shifted
   * into the container's range, and ids outside it as nobody.
   */
  idmap?: boolean;
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
  diskWeight?: number; // 1..1000, the share of disk time against siblings (BFQ scheduler; default 100)
  networkBandwidth?: number; // Mbps, ingress and egress (bridge network)
  gpuCount?: number;
  gpuDevices?: number[];
  /** Share the GPUs with other sharing containers; MPS quotas when its daemon runs (gpu/quota.ts). */
  gpuShare?: { computePercent?: number; memoryLimit?: number };
  /** MIG instances by count, of one profile ("1g.10gb") when given; exclusive like GPUs (gpu/mig.ts). */
  gpuMig?: { count: number; profile?: string };
}

export interface ContainerSpec {
  name: string;
  image: string;
  personality: Personality;
  command?: string[];
  /** Replaces the image's Entrypoint (and drops its Cmd unless `command` is given); [] clears it. */
  entrypoint?: string[];
  args: string[];
  env: Record<string, string>;
  workingDir?: string;
  /** "uid", "uid:gid", "name" or "name:group", resolved against the image's /etc/passwd. */
  user?: string;
  hostname?: string;
  volumes: VolumeSpec[];
  network: NetworkMode;
  /** A pseudo-terminal for the process (stdin, stdout and stderr); see Container.attach(). */
  terminal: boolean;
  /** A minimal init as pid 1 that forwards signals to the command and reaps orphans. */
  init?: boolean;
  resources: ResourceSpec;
  /** CDI devices by fully-qualified name (`vendor.com/class=name`), as their specs describe them. */
  devices?: string[];
  /** Security settings (secure-runtime); undefined means the default profile. */
  security?: SecurityProfile | SecurityOptions;
  labels: Record<string, string>;
  /** Restart policy; retries and backoff default to the personality's decision rules. */
  restart?: RestartSpec;
  /**
   * Live responses to pressure (container/autoscale.ts). Unset: on while the container
   * evolves, else off; false: off even then.
   */
  autoscale?: { maxMemoryBytes?: number; maxCpus?: number; intervalMs?: number } | false;
}

export type RestartPolicyName = 'no' | 'on-failure' | 'always' | 'unless-stopped';

export interface RestartSpec {
  policy: RestartPolicyName;
  maxRetries?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  multiplier?: number;
}

export { RESTART_POLICIES } from './config-checks.js';

export class ContainerConfig {
  readonly spec: Readonly<ContainerSpec>;
  private affinity: HardwareAffinity | undefined;

  /** Takes `spec` as its own and freezes it to the leaves: a built config never changes under a container. */
  private constructor(spec: ContainerSpec, affinity?: HardwareAffinity) {
    this.spec = deepFreeze(spec);
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

  /** Changes this config only: copies made with clone() (a created container's) keep theirs. */
  setHardwareAffinity(affinity: HardwareAffinity): void {
    this.affinity = affinity;
  }

  /** An independent config with the same spec and affinity, for a container to keep as its own. */
  clone(): ContainerConfig {
    return new ContainerConfig(deepCopy(this.spec) as ContainerSpec, this.affinity);
  }

  /** Plain data for state.json, a copy the caller may change. */
  toJSON(): Record<string, unknown> {
    return {
      ...deepCopy(this.spec),
      personality: { name: this.spec.personality.name, traits: { ...this.spec.personality.traits() } },
      hardwareAffinity: deepCopy(this.affinity?.spec),
    };
  }
}

/** What a builder holds until build() checks it. */
export type DraftSpec = Partial<ContainerSpec> & { args: string[]; env: Record<string, string>; volumes: VolumeSpec[]; resources: ResourceSpec; labels: Record<string, string> };

export class ContainerConfigBuilder {
  private s: DraftSpec = {
    args: [],
    env: {},
    volumes: [],
    resources: {},
    labels: {},
  };
  private affinity: HardwareAffinity | undefined;

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
  /** The program the command is handed to; overrides the image's Entrypoint, as `docker run --entrypoint`. */
  entrypoint(argv: string[]): this {
    this.s.entrypoint = [...argv];
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
  /** A pseudo-terminal as the process's stdin, stdout and stderr (its output still goes to the log). */
  terminal(on: boolean): this {
    this.s.terminal = on;
    return this;
  }
  /** Runs the command under a minimal init (pid 1 forwarding signals and reaping), as `docker run --init`. */
  init(on: boolean): this {
    this.s.init = on;
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
  /** The container's proportional share of disk time, 1..1000 (needs the BFQ I/O scheduler). */
  diskWeight(weight: number): this {
    this.s.resources.diskWeight = weight;
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
  /** GPUs shared with other sharing containers (exclusive otherwise), with MPS limits: compute %, memory bytes per GPU. */
  gpuShare(quota: { computePercent?: number; memoryLimit?: number } = {}): this {
    this.s.resources.gpuShare = { ...quota };
    return this;
  }
  /** MIG instances of GPUs with MIG on: `count` of them, all of `profile` ("1g.10gb") when given. */
  gpuMig(request: { count: number; profile?: string }): this {
    this.s.resources.gpuMig = { ...request };
    return this;
  }
  /** CDI devices: `nvidia.com/gpu=0`, `nvidia.com/gpu=GPU-<uuid>`, `vendor.com/class=all`. */
  devices(names: string[]): this {
    this.s.devices = [...names];
    return this;
  }
  security(profile: SecurityProfile | SecurityOptions): this {
    this.s.security = profile;
    return this;
  }
  /**
   * Grows the memory and CPU limits under pressure, by the personality's rules. Without this
   * call it is on while the container evolves; `false` keeps it off then too.
   */
  autoscale(on: boolean | { maxMemoryBytes?: number; maxCpus?: number; intervalMs?: number } = true): this {
    if (on === false) this.s.autoscale = false;
    else this.s.autoscale = on === true ? {} : { ...on };
    return this;
  }

  /** As `docker run --restart`: 'no', 'on-failure', 'always' or 'unless-stopped'. */
  restart(policy: RestartPolicyName, opts: Omit<RestartSpec, 'policy'> = {}): this {
    this.s.restart = { policy, ...opts };
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
    const s = this.s;
    checkSpec(s);
    const net = s.network ?? 'none';
    const r = s.resources;
    // A copy, so that a builder used again (more env, another volume) leaves this config alone.
    const spec: ContainerSpec = deepCopy({
      name: s.name!,
      image: s.image!,
      personality: s.personality ?? Personality.Balanced,
      command: s.command,
      entrypoint: s.entrypoint,
      args: s.args,
      env: s.env,
      workingDir: s.workingDir,
      user: s.user,
      hostname: s.hostname,
      volumes: s.volumes,
      network: net as NetworkMode,
      terminal: !!s.terminal,
      init: s.init ? true : undefined,
      resources: r,
      ...(s.devices?.length ? { devices: s.devices } : {}),
      security: s.security,
      labels: s.labels,
      ...(s.restart ? { restart: s.restart } : {}),
      ...(s.autoscale !== undefined ? { autoscale: s.autoscale } : {}),
    });
    return new (ContainerConfig as unknown as new (s: ContainerSpec, a?: HardwareAffinity) => ContainerConfig)(spec, this.affinity);
  }
}

export { ConfigError };
