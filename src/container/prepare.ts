/**
 * Prepare: compiles a container's configuration into one SpawnPlan before anything exists —
 * user and groups resolved in the image, environment, volumes, namespaces, cgroup limits,
 * security (capabilities, seccomp BPF), GPUs, placement and network. It reads (the image,
 * volume sources, host facts through the kernel seam) but changes nothing, so bad input
 * fails here with nothing to clean up, and unit tests compare plans without root.
 */
import * as fs from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { RuntimeError } from '../errors.js';
import type { GpuInventory } from '../gpu/inventory.js';
import { checkNetDevices } from '../gpu/cdi/netdev.js';
import { planRdt, RESCTRL_MOUNTINFO } from '../gpu/cdi/rdt.js';
import { mergeEnv, prepareGpus, type GpuPrepareContext } from '../gpu/prepare.js';
import { processArgv } from '../image/config.js';
import type { ResolvedImage } from '../image/store.js';
import { createLimits } from '../isolation/container-limits.js';
import { validateResources } from '../isolation/resources.js';
import type { Kernel } from '../kernel/kernel.js';
import type { ContainerPaths, ExecPlan, NamespaceName, PlanPlacement, PlanVolume, ProcessPlan, SpawnPlan } from '../plan/types.js';
import { compileSecurity } from '../secure-runtime/compile.js';
import { SecurityProfile } from '../secure-runtime/profile.js';
import type { ContainerConfig, VolumeSpec } from './config.js';
import { buildEnv, searchPath } from './env.js';
import { resolveUser, type ImageAccounts } from './user.js';

export interface PrepareContext {
  images: { resolve(ref: string): ResolvedImage; accounts(image: ResolvedImage): ImageAccounts };
  kernel: Kernel;
  stateDir(id: string): string;
  storageDir(id: string): string;
  /** Whether a volume's host source is a directory or a file (it must exist). */
  volumeSource(path: string): 'directory' | 'file';
  /** The host's GPUs; needed only when the configuration asks for GPUs. */
  gpus?: GpuInventory | undefined;
  /** How GPUs and CDI devices reach the container (engine, the scheduler's choice, specs, driver files). */
  gpu?: (Partial<Pick<GpuPrepareContext, 'engine' | 'cdi' | 'driver' | 'devDir' | 'statNode' | 'mpsPipeDir' | 'capsDir'>> & { assigned?(id: string): GpuPrepareContext['assigned'] }) | undefined;
  /** The host path of the init binary; needed only when the configuration asks for `init`. */
  initBinary?: (() => string) | undefined;
}

/** Where a container run with `init(true)` finds its init: on its own /dev, read-only. */
export const INIT_PATH = '/dev/init';

export function containerPaths(ctx: Pick<PrepareContext, 'stateDir' | 'storageDir'>, id: string): ContainerPaths {
  const storageDir = ctx.storageDir(id);
  return {
    stateDir: ctx.stateDir(id),
    storageDir,
    rootfs: join(storageDir, 'rootfs'),
    upper: join(storageDir, 'upper'),
    work: join(storageDir, 'work'),
    stdoutLog: join(storageDir, 'stdout.log'),
    stderrLog: join(storageDir, 'stderr.log'),
  };
}

function readText(path: string): string | undefined {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Whether a configuration asks for GPUs (directly or through its hardware affinity). */
export function wantsGpus(config: ContainerConfig): boolean {
  const r = config.spec.resources;
  return !!r.gpuCount || !!r.gpuDevices?.length || !!r.gpuMig || config.hardwareAffinity()?.spec.gpuDevice !== undefined;
}

function volumes(list: readonly VolumeSpec[], ctx: PrepareContext, userns: boolean): PlanVolume[] {
  return list.map((v, i) => {
    let kind: 'directory' | 'file';
    try {
      kind = ctx.volumeSource(v.source);
    } catch (e) {
      if (e instanceof RuntimeError) throw e.wrap(`volumes[${i}]: source \`${v.source}\``);
      throw e;
    }
    const target = posix.normalize(v.target);
    return { source: v.source, target: target.length > 1 ? target.replace(/\/+$/, '') : target, readOnly: !!v.readOnly, isFile: kind === 'file', idmap: userns && v.idmap !== false };
  });
}

/** CPU affinity and memory policy from the hardware affinity; a NUMA node's CPUs come from the kernel. */
function placement(config: ContainerConfig, kernel: Kernel): PlanPlacement | undefined {
  const a = config.hardwareAffinity();
  if (!a) return undefined;
  return { cpus: a.cpus((node) => kernel.numaNodeCpus(node)), mempolicy: a.memoryPolicy() };
}

/** The nearest directory of `path` that exists: a container's storage is made only at provisioning. */
function existingAncestor(kernel: Kernel, path: string): string {
  let p = path;
  while (p !== '/' && !kernel.exists(p)) p = dirname(p);
  return p;
}

function processPlan(
  config: ContainerConfig,
  image: ResolvedImage,
  ctx: PrepareContext,
  o: { user?: string | undefined; env?: Readonly<Record<string, string>>; cwd?: string | undefined; argv: string[]; hostname: string; lastCap: number },
): ProcessPlan {
  const spec = config.spec;
  const user = resolveUser(ctx.images.accounts(image), o.user ?? spec.user ?? image.config.user);
  const security = compileSecurity(spec.security, user, ctx.kernel, o.lastCap, { kernelRelease: ctx.kernel.kernelRelease() });
  const env = buildEnv(image.config.env, { ...spec.env, ...(o.env ?? {}) }, o.hostname, user);
  return {
    argv: o.argv,
    env,
    cwd: o.cwd ?? spec.workingDir ?? image.config.workingDir ?? '/',
    searchPath: searchPath(env),
    user,
    security,
    placement: placement(config, ctx.kernel),
  };
}

/** The plan for creating container `id` from `config`. Throws, naming the field, on bad input. */
export function prepareCreate(config: ContainerConfig, id: string, ctx: PrepareContext): SpawnPlan {
  const spec = config.spec;
  const image = ctx.images.resolve(spec.image);
  const command = processArgv(image.config, spec);
  if (command.length === 0) throw new RuntimeError('command: the image has no default command and none was given', { code: 'EINVAL', step: 'config' });
  let init: SpawnPlan['init'];
  if (spec.init) {
    if (!ctx.initBinary) throw new RuntimeError('prepare: init asked for but no init binary was given', { code: 'EINVAL', step: 'config' });
    init = { hostPath: ctx.initBinary(), path: INIT_PATH };
  }
  const argv = init ? [init.path, '--', ...command] : command;
  const hostname = spec.hostname ?? id.slice(0, 12);
  const lastCap = ctx.kernel.capLastCap();
  const proc = processPlan(config, image, ctx, { argv, hostname, lastCap });
  if (spec.terminal) proc.terminal = true;
  const paths = containerPaths(ctx, id);
  const userns = SecurityProfile.resolve(spec.security).userNamespace;

  const affinity = config.hardwareAffinity()?.spec;
  let gpus: ReturnType<typeof prepareGpus>;
  if (wantsGpus(config) || spec.devices?.length) {
    const devDir = ctx.gpu?.devDir ?? '/dev';
    const request = {
      gpuCount: spec.resources.gpuCount,
      gpuDevices: spec.resources.gpuDevices ?? (affinity?.gpuDevice !== undefined ? [affinity.gpuDevice] : undefined),
      gpuShare: spec.resources.gpuShare,
      gpuMig: spec.resources.gpuMig,
      devices: spec.devices,
    };
    gpus = prepareGpus(request, {
      engine: ctx.gpu?.engine ?? 'native',
      inventory: ctx.gpus,
      assigned: ctx.gpu?.assigned?.(id),
      cdi: ctx.gpu?.cdi,
      driver: ctx.gpu?.driver,
      host: { deviceNames: ctx.kernel.deviceNames(devDir), procDevices: ctx.kernel.procDevices() },
      devDir,
      statNode: ctx.gpu?.statNode,
      mpsPipeDir: ctx.gpu?.mpsPipeDir ?? '/tmp/nvidia-mps',
      capsDir: ctx.gpu?.capsDir,
      exists: (p) => ctx.kernel.exists(p),
      read: readText,
    }, proc.env);
    if (gpus) {
      // A variable the configuration sets itself wins (LD_LIBRARY_PATH already carries it).
      const own = (e: string) => e.slice(0, e.indexOf('=')) in spec.env && !e.startsWith('LD_LIBRARY_PATH=');
      gpus.env = gpus.env.filter((e) => !own(e));
      proc.env = mergeEnv(proc.env, gpus.env);
      for (const g of gpus.additionalGids) if (!proc.user.groups.includes(g)) proc.user.groups.push(g);
    }
  }

  const cgroup = createLimits(spec.resources, { cpus: proc.placement?.cpus?.join(',') }, {
    blockDevice: () => ctx.kernel.blockDevice(existingAncestor(ctx.kernel, paths.storageDir)),
  });
  if (gpus) cgroup.devices = gpus.rules;
  const gpuMounts = (gpus?.mounts ?? []).map((m, i) => {
    let kind: 'directory' | 'file';
    try {
      kind = ctx.volumeSource(m.source);
    } catch (e) {
      if (e instanceof RuntimeError) throw e.wrap(`devices: mount ${i} (${m.target})`);
      throw e;
    }
    return { source: m.source, target: m.target, readOnly: m.readOnly, isFile: kind === 'file', idmap: userns.enabled };
  });
  validateResources(cgroup);

  const network = spec.network;
  if (gpus?.netDevices.length) checkNetDevices(gpus.netDevices, network, (n) => ctx.kernel.exists(`/sys/class/net/${n}`));
  const intelRdt = gpus?.intelRdt ? planRdt(gpus.intelRdt.rdt, gpus.intelRdt.origin, id, readText(RESCTRL_MOUNTINFO) ?? '') : undefined;
  const namespaces: NamespaceName[] = ['pid', 'mnt', 'uts', 'ipc', 'cgroup', ...(network === 'host' ? [] : (['net'] as const)), ...(userns.enabled ? (['user'] as const) : [])];
  return {
    id,
    name: spec.name,
    hostname,
    image: { ref: image.ref, layers: [...image.layers], layerPaths: [...image.layerPaths] },
    paths,
    process: proc,
    volumes: [...volumes(spec.volumes, ctx, userns.enabled), ...gpuMounts],
    namespaces,
    network: { mode: network, bandwidthMbps: spec.resources.networkBandwidth },
    userNamespace: userns.enabled ? { size: userns.size, stagingDirs: image.layerPaths.map((_, i) => join(paths.storageDir, 'lower', String(i))) } : undefined,
    cgroup,
    devices: gpus?.hostNodes ?? [],
    ...(gpus?.deviceNodes.length ? { deviceNodes: gpus.deviceNodes } : {}),
    gpus: gpus?.gpus,
    ...(gpus?.hooks.length ? { hooks: gpus.hooks } : {}),
    ...(gpus?.netDevices.length ? { netDevices: gpus.netDevices } : {}),
    ...(intelRdt ? { intelRdt } : {}),
    ...(gpus && (gpus.env.length || gpus.additionalGids.length) ? { deviceProcess: { env: gpus.env, groups: gpus.additionalGids } } : {}),
    lastCap,
    ...(init ? { init } : {}),
  };
}

export interface ExecRequest {
  argv: string[];
  env?: Readonly<Record<string, string>> | undefined;
  workingDir?: string | undefined;
  user?: string | number | undefined;
  /** A pseudo-terminal as the process's stdio. */
  terminal?: boolean | undefined;
}

/** The plan for a further process in a created container, from its record's facts. */
export function prepareExec(
  config: ContainerConfig,
  container: { id: string; imageRef: string; namespaces: string[]; cgroupProcs: string[]; deviceProcess?: { env: string[]; groups: number[] } | undefined },
  req: ExecRequest,
  ctx: PrepareContext,
): ExecPlan {
  if (req.argv.length === 0 || req.argv.some((a) => typeof a !== 'string' || a.includes('\0'))) {
    throw new RuntimeError('exec: command must be a non-empty list of strings without NUL bytes', { code: 'EINVAL', step: 'config' });
  }
  const image = ctx.images.resolve(container.imageRef);
  const process = processPlan(config, image, ctx, {
    argv: [...req.argv],
    env: req.env,
    cwd: req.workingDir,
    user: req.user !== undefined ? String(req.user) : undefined,
    hostname: config.spec.hostname ?? container.id.slice(0, 12),
    lastCap: ctx.kernel.capLastCap(),
  });
  if (req.terminal) process.terminal = true;
  // An exec sees the devices as the container's command does (the record keeps what they add).
  if (container.deviceProcess) {
    process.env = mergeEnv(process.env, container.deviceProcess.env.filter((e) => !(e.slice(0, e.indexOf('=')) in (req.env ?? {}))));
    for (const g of container.deviceProcess.groups) if (!process.user.groups.includes(g)) process.user.groups.push(g);
  }
  return { process, namespaces: [...container.namespaces], cgroupProcs: [...container.cgroupProcs], lastCap: ctx.kernel.capLastCap() };
}
