/**
 * compileSecurity: a SecurityProfile, the container's user and the running kernel, turned
 * into plain data (masks, BPF bytes, paths) that the plan compiler emits as init ops.
 */
import { release } from 'node:os';
import { Problems, RuntimeError } from '../errors.js';
import type { Kernel } from '../kernel/kernel.js';
import type { OciSeccompProfile } from '../kernel/native.js';
import { capabilityMask, capabilityNumber, knownMask, type CapabilityName } from './capabilities.js';
import type { SecurityOptions } from './profile-options.js';
import { SecurityProfile } from './profile.js';
import { defaultSeccompProfile, resolveSeccompProfile } from './seccomp.js';

export interface CompiledCapabilities {
  bounding: bigint;
  effective: bigint;
  permitted: bigint;
  inheritable: bigint;
  ambient: bigint;
}

export interface CompiledSecurity {
  capabilities: CompiledCapabilities;
  noNewPrivileges: boolean;
  /** Absent when unconfined. `profile` is what was compiled (for inspection and logs). */
  seccomp?: { bpf: Buffer; unknownSyscalls: string[]; profile: OciSeccompProfile };
  /**
   * Loading a filter without no_new_privs needs CAP_SYS_ADMIN (seccomp(2)), which the init
   * no longer has after the capability drop; then the filter must go in before it, and must
   * allow the init's remaining steps (prctl, setgroups, setres[ug]id, capset, execve...).
   */
  seccompBeforeCapabilityDrop: boolean;
  readonlyRoot: boolean;
  /** Container paths; `*` patterns already expanded. */
  maskedPaths: string[];
  readonlyPaths: string[];
  rlimits: { name: string; resource: number; soft: bigint; hard: bigint }[];
  userNamespace: { enabled: boolean; size: number };
  /** Capabilities of the profile the running kernel does not know (above lastCap): left out. */
  unsupportedCapabilities: string[];
}

export interface CompileSecurityOptions {
  /** Node's process.arch spelling; default: this process's. */
  arch?: string;
  /** `uname -r`, for Docker-style `minKernel` conditions; default: this host's. */
  kernelRelease?: string;
}

const CAP_SYS_ADMIN = 1n << BigInt(capabilityNumber('CAP_SYS_ADMIN'));

/**
 * libseccomp takes milliseconds for a profile this size (hundreds of names, three ABIs) and
 * every create and exec needs one, while a host sees few distinct profiles: compiled
 * filters are kept per kernel seam, keyed by the resolved profile.
 */
const filterCache = new WeakMap<Kernel, Map<string, { bpf: Buffer; unknownSyscalls: string[] }>>();
const FILTER_CACHE_SIZE = 32;

function compileCached(kernel: Kernel, profile: OciSeccompProfile): { bpf: Buffer; unknownSyscalls: string[] } {
  let cache = filterCache.get(kernel);
  if (!cache) filterCache.set(kernel, (cache = new Map()));
  const key = JSON.stringify(profile, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
  const hit = cache.get(key);
  if (hit) {
    cache.delete(key); // most recently used last
    cache.set(key, hit);
    return { bpf: Buffer.from(hit.bpf), unknownSyscalls: [...hit.unknownSyscalls] };
  }
  const compiled = kernel.compileSeccomp(profile);
  cache.set(key, { bpf: Buffer.from(compiled.bpf), unknownSyscalls: [...compiled.unknownSyscalls] });
  if (cache.size > FILTER_CACHE_SIZE) cache.delete(cache.keys().next().value!);
  return compiled;
}

function globToRegExp(component: string): RegExp {
  const escaped = component.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*');
  return new RegExp(`^${escaped}$`);
}

/**
 * Expands `*` components against the host tree. Only /proc and /sys paths carry a `*`
 * (the profile refuses others): those show the same kernel inside and outside.
 */
export function expandPathPattern(pattern: string, kernel: Kernel): string[] {
  if (!pattern.includes('*')) return [pattern];
  let prefixes = [''];
  for (const comp of pattern.split('/').slice(1)) {
    const next: string[] = [];
    for (const dir of prefixes) {
      if (!comp.includes('*')) {
        next.push(`${dir}/${comp}`);
        continue;
      }
      let entries: string[];
      try {
        entries = kernel.readdir(dir === '' ? '/' : dir);
      } catch {
        continue;
      }
      const re = globToRegExp(comp);
      for (const e of entries.sort()) if (re.test(e)) next.push(`${dir}/${e}`);
    }
    prefixes = next;
  }
  return prefixes.filter((p) => kernel.exists(p));
}

function checkUser(user: { uid: number; gid: number }, lastCap: number, problems: Problems): void {
  for (const k of ['uid', 'gid'] as const) {
    const v = user?.[k];
    // (uid_t)-1 means "unchanged" to setresuid(2), never a real id.
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xfffffffe) {
      problems.add(`user.${k}`, `expected an integer 0..4294967294, got ${String(v)}`);
    }
  }
  if (!Number.isInteger(lastCap) || lastCap < 0 || lastCap > 63) {
    problems.add('lastCap', `expected /proc/sys/kernel/cap_last_cap (0..63), got ${String(lastCap)}`);
  }
}

/**
 * Capability sets as Docker sets them: root gets the set as bounding, effective and
 * permitted; any other uid only the bounding set (so a setuid binary could regain no more,
 * and with no_new_privs none at all). Inheritable stays empty (CVE-2022-24769: a non-empty
 * inheritable set let file capabilities of an exec'd binary escalate).
 */
export function capabilitySets(caps: readonly CapabilityName[], uid: number, lastCap: number): CompiledCapabilities {
  const set = capabilityMask(caps) & knownMask(lastCap);
  const root = uid === 0;
  return { bounding: set, effective: root ? set : 0n, permitted: root ? set : 0n, inheritable: 0n, ambient: 0n };
}

export function compileSecurity(
  profile: SecurityProfile | SecurityOptions | undefined,
  user: { uid: number; gid: number },
  kernel: Kernel,
  lastCap: number,
  opts: CompileSecurityOptions = {},
): CompiledSecurity {
  const p = SecurityProfile.resolve(profile);
  const problems = new Problems();
  checkUser(user, lastCap, problems);
  if (p.userNamespace.enabled) {
    for (const k of ['uid', 'gid'] as const) {
      if (typeof user?.[k] === 'number' && user[k] >= p.userNamespace.size) {
        problems.add(`user.${k}`, `${user[k]} is not mapped: the user namespace maps 0..${p.userNamespace.size - 1} (raise security.userNamespace.size)`);
      }
    }
  }
  problems.throwIfAny('cannot compile the security profile');

  const capabilities = capabilitySets(p.capabilities, user.uid, lastCap);
  const unsupportedCapabilities = p.capabilities.filter((c) => capabilityNumber(c) > lastCap);
  const granted = p.capabilities.filter((c) => capabilityNumber(c) <= lastCap);

  let seccomp: CompiledSecurity['seccomp'];
  if (p.seccomp !== 'unconfined') {
    const ctx = { capabilities: granted, arch: opts.arch, kernelRelease: opts.kernelRelease ?? release() };
    const resolved =
      p.seccomp === 'default' ? defaultSeccompProfile(ctx) : resolveSeccompProfile(p.seccomp, ctx);
    let compiled: { bpf: Buffer; unknownSyscalls: string[] };
    try {
      compiled = compileCached(kernel, resolved);
    } catch (e) {
      if (e instanceof RuntimeError) throw e.wrap('security.seccomp');
      throw e;
    }
    seccomp = { bpf: compiled.bpf, unknownSyscalls: compiled.unknownSyscalls, profile: resolved };
  }

  const maskedPaths: string[] = [];
  for (const m of p.maskedPaths) {
    for (const path of expandPathPattern(m, kernel)) if (!maskedPaths.includes(path)) maskedPaths.push(path);
  }

  return {
    capabilities,
    noNewPrivileges: p.noNewPrivileges,
    seccomp,
    seccompBeforeCapabilityDrop: seccomp !== undefined && !p.noNewPrivileges && (capabilities.effective & CAP_SYS_ADMIN) === 0n,
    readonlyRoot: p.readonlyRoot,
    maskedPaths,
    readonlyPaths: [...p.readonlyPaths],
    rlimits: p.rlimits.map((r) => ({ name: r.name, resource: r.resource, soft: r.soft, hard: r.hard })),
    userNamespace: { ...p.userNamespace },
    unsupportedCapabilities,
  };
}
