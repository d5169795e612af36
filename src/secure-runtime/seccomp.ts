/**
 * Resolution of Docker's conditional seccomp rules (includes/excludes by capability,
 * architecture and kernel) into the plain OCI `linux.seccomp` shape that native/seccomp.cc
 * compiles.
 */
import { release } from 'node:os';
import type { OciSeccompProfile, OciSeccompRule } from '../kernel/native.js';
import { DEFAULT_CAPABILITIES, normalizeCapability } from './capabilities.js';
import { dockerArch, seccompArchitectures } from './seccomp-arch.js';
import { defaultSeccompTemplate } from './seccomp-template.js';
import type { SeccompProfile } from './seccomp-types.js';

export interface SeccompResolveContext {
  /** The container's capability set (its bounding set), CAP_ names. */
  capabilities: readonly string[];
  /** Node's `process.arch` spelling. */
  arch?: string;
  /** `uname -r` of the host, for `minKernel`. */
  kernelRelease?: string;
}

function parseKernelVersion(s: string): number[] {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(s);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : [0, 0, 0];
}

function kernelAtLeast(running: string, min: string): boolean {
  const a = parseKernelVersion(running);
  const b = parseKernelVersion(min);
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i]! > b[i]!;
  return true;
}

/**
 * Turns a profile with Docker's conditional rules into a plain OCI profile for one
 * container: the architectures for this host, and only the rules whose conditions hold.
 */
export function resolveSeccompProfile(profile: SeccompProfile, ctx: SeccompResolveContext): OciSeccompProfile {
  const arch = ctx.arch ?? process.arch;
  const goArch = dockerArch(arch);
  const kernel = ctx.kernelRelease ?? release();
  const caps = new Set(ctx.capabilities.map((c) => normalizeCapability(c) ?? c));
  let architectures = profile.architectures ? [...profile.architectures] : [];
  if (profile.archMap) {
    const native = seccompArchitectures(arch)[0];
    const entry = profile.archMap.find((e) => e.architecture === native);
    architectures = entry ? [entry.architecture, ...(entry.subArchitectures ?? [])] : [];
  }
  const syscalls: OciSeccompRule[] = [];
  for (const rule of profile.syscalls ?? []) {
    const ex = rule.excludes;
    if (ex?.arches?.includes(goArch)) continue;
    if (ex?.caps?.some((c) => caps.has(normalizeCapability(c) ?? c))) continue;
    if (ex?.minKernel && kernelAtLeast(kernel, ex.minKernel)) continue;
    const inc = rule.includes;
    if (inc?.arches && inc.arches.length > 0 && !inc.arches.includes(goArch)) continue;
    if (inc?.caps?.some((c) => !caps.has(normalizeCapability(c) ?? c))) continue;
    if (inc?.minKernel && !kernelAtLeast(kernel, inc.minKernel)) continue;
    const out: OciSeccompRule = { names: [...rule.names], action: rule.action };
    if (rule.errnoRet !== undefined) out.errnoRet = rule.errnoRet;
    if (rule.args && rule.args.length > 0) out.args = rule.args.map((a) => ({ ...a }));
    syscalls.push(out);
  }
  const out: OciSeccompProfile = { defaultAction: profile.defaultAction, syscalls };
  if (profile.defaultErrnoRet !== undefined) out.defaultErrnoRet = profile.defaultErrnoRet;
  if (architectures.length > 0) out.architectures = architectures;
  return out;
}

export interface DefaultSeccompOptions {
  /** The container's capability set; default: Docker's 14 (DEFAULT_CAPABILITIES). */
  capabilities?: readonly string[];
  arch?: string;
  kernelRelease?: string;
}

/** The default profile resolved for one capability set and this host, ready to compile. */
export function defaultSeccompProfile(opts: DefaultSeccompOptions = {}): OciSeccompProfile {
  return resolveSeccompProfile(defaultSeccompTemplate(), {
    capabilities: opts.capabilities ?? DEFAULT_CAPABILITIES,
    arch: opts.arch,
    kernelRelease: opts.kernelRelease,
  });
}

/** Syscall names a profile lets through for this host and capability set, with or without argument conditions. */
export function allowedSyscalls(profile: OciSeccompProfile): { unconditional: Set<string>; conditional: Set<string> } {
  const unconditional = new Set<string>();
  const conditional = new Set<string>();
  const allowAll = profile.defaultAction === 'SCMP_ACT_ALLOW' || profile.defaultAction === 'SCMP_ACT_LOG';
  for (const r of profile.syscalls ?? []) {
    const allows = r.action === 'SCMP_ACT_ALLOW' || r.action === 'SCMP_ACT_LOG';
    if (!allows || allowAll) continue;
    for (const n of r.names) (r.args && r.args.length > 0 ? conditional : unconditional).add(n);
  }
  for (const n of unconditional) conditional.delete(n);
  return { unconditional, conditional };
}
