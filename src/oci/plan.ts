/**
 * From a translated bundle to a SpawnPlan: the same plan the library's own containers
 * compile to, with the bundle's rootfs bound as it is and its mounts in place of the
 * default set. Reads host facts (the last capability, the kernel release) through the
 * kernel seam, changes nothing.
 */
import { createHash } from 'node:crypto';
import { ConfigError, RuntimeError } from '../errors.js';
import { searchPath } from '../container/env.js';
import { containerPaths } from '../container/prepare.js';
import { DEFAULT_DEVICE_RULES } from '../isolation/devices.js';
import { validateResources } from '../isolation/resources.js';
import type { Kernel } from '../kernel/kernel.js';
import type { NamespaceName, SpawnPlan } from '../plan/types.js';
import { capabilityNames } from '../secure-runtime/capabilities.js';
import { parseOciSeccomp } from '../secure-runtime/seccomp-parse.js';
import { resolveSeccompProfile } from '../secure-runtime/seccomp.js';
import type { OciTranslation } from './config.js';
import { personalityResources } from './personality.js';

/** The runtime's own id of an OCI container (its state directory's name): the engine's id can be any string. */
export function internalId(ociId: string): string {
  return createHash('sha256').update(ociId).digest('hex').slice(0, 32);
}

const OCI_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export function checkOciId(id: string): void {
  if (!OCI_ID_RE.test(id)) throw new RuntimeError(`container id "${id}" is not valid: letters, digits, "_", "." and "-", at most 128`, { code: 'EINVAL', step: 'config' });
}

export interface PlanContext {
  kernel: Kernel;
  stateDir(id: string): string;
  storageDir(id: string): string;
  /** The runtime's cgroup parent, which a relative linux.cgroupsPath is below. */
  cgroupParent: string;
}

/** A container's cgroup path relative to each hierarchy's root, from linux.cgroupsPath. */
export function cgroupPlacement(cgroupsPath: string | undefined, parent: string): string | undefined {
  if (cgroupsPath === undefined) return undefined;
  return cgroupsPath.startsWith('/') ? cgroupsPath.replace(/^\/+/, '') : `${parent}/${cgroupsPath}`;
}

/**
 * The process of a translated config as the spawner runs it, for the container's init and
 * for an exec (`security` overrides: an exec's root, masks and read-only paths are the
 * container's already).
 */
export function processPlan(t: Pick<OciTranslation, 'process' | 'security'>, seccomp: { bpf: Buffer } | undefined, security: Partial<SpawnPlan['process']['security']> = {}): SpawnPlan['process'] {
  return {
    argv: t.process.argv,
    env: t.process.env,
    cwd: t.process.cwd,
    searchPath: searchPath(t.process.env),
    user: t.process.user,
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, so it goes before the drop.
    security: { ...t.security, ...security, seccomp, seccompBeforeCapabilityDrop: !!seccomp && !t.security.noNewPrivileges },
    terminal: t.process.terminal || undefined,
  };
}

export function ociPlan(ociId: string, t: OciTranslation, ctx: PlanContext): SpawnPlan {
  const id = internalId(ociId);
  const lastCap = ctx.kernel.capLastCap();
  let seccomp: { bpf: Buffer } | undefined;
  if (t.seccomp !== undefined) {
    const profile = parseOciSeccomp(t.seccomp, 'linux.seccomp');
    const resolved = resolveSeccompProfile(profile, { capabilities: capabilityNames(t.security.capabilities.bounding), kernelRelease: ctx.kernel.kernelRelease() });
    try {
      seccomp = { bpf: ctx.kernel.compileSeccomp(resolved).bpf };
    } catch (e) {
      throw e instanceof RuntimeError ? e.wrap('linux.seccomp') : e;
    }
  }
  // The engine's device rules, then the nodes every container gets (as runc adds them):
  // a "deny all" first rule must not take /dev/null away.
  const base = t.personality ? personalityResources(t.personality, t.resources).resources : t.resources;
  const cgroup = { ...base, devices: [...(t.resources.devices ?? []), ...DEFAULT_DEVICE_RULES] };
  try {
    validateResources(cgroup);
  } catch (e) {
    // The library's field names, as the bundle's (hugetlb is the spec's hugepageLimits).
    if (e instanceof ConfigError) throw new ConfigError('invalid config.json', e.problems.map((p) => ({ field: `linux.resources.${p.field.replace(/^hugetlb/, 'hugepageLimits')}`, problem: p.problem })));
    throw e instanceof RuntimeError ? e.wrap('linux.resources') : e;
  }
  const namespaces: NamespaceName[] = [...(['pid', 'uts', 'ipc'] as const).filter((n) => !t.shareHost.includes(n)), 'mnt', 'cgroup', ...(t.network === 'host' ? [] : (['net'] as const)), ...(t.idMaps || t.join.user ? (['user'] as const) : [])];
  return {
    id,
    name: ociId,
    hostname: t.hostname,
    image: { ref: `bundle:${t.rootfs}`, layers: [], layerPaths: [] },
    paths: containerPaths(ctx, id),
    process: processPlan(t, seccomp),
    volumes: [],
    namespaces,
    network: { mode: t.network },
    ...(Object.keys(t.join).length ? { joinNamespaces: t.join } : {}),
    cgroup,
    cgroupPath: cgroupPlacement(t.cgroupsPath, ctx.cgroupParent),
    devices: t.devices,
    ...(t.mknods.length ? { mknods: t.mknods } : {}),
    ...(t.rootfsPropagation !== undefined ? { rootfsPropagation: t.rootfsPropagation } : {}),
    lastCap,
    rootfsDir: t.rootfs,
    mounts: t.mounts,
    // The bundle's own id maps: no range is allocated, and the rootfs is used as it is (its
    // owners are the engine's to map, as with runc).
    ...(t.idMaps ? { userNamespace: { size: t.idMaps.size, stagingDirs: [] }, idMaps: { uid: t.idMaps.uid, gid: t.idMaps.gid } } : {}),
  };
}
