/**
 * The checks of ContainerConfigBuilder.build(): every field of a draft configuration, each
 * bad one reported by name, all together in one ConfigError.
 */
import { isAbsolute, posix } from 'node:path';
import { Problems } from '../errors.js';
import { parseQualifiedName } from '../gpu/cdi/spec.js';
import { MIG_PROFILE } from '../gpu/mig.js';
import { referenceProblem } from '../image/reference.js';
import { SecurityProfile } from '../secure-runtime/profile.js';
import type { DraftSpec, RestartPolicyName } from './config.js';

export const RESTART_POLICIES: readonly RestartPolicyName[] = ['no', 'on-failure', 'always', 'unless-stopped'];

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;
const HOSTNAME_RE = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;
const ENV_KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const USER_RE = /^[a-z_][a-z0-9_.-]*$|^\d+$/i;
const CPUSET_RE = /^\d+(-\d+)?(,\d+(-\d+)?)*$/;

/** Container paths a volume may not cover: the kernel's views the runtime mounts itself. */
const RESERVED_TARGETS = ['/proc', '/sys', '/dev'];

/** Throws a ConfigError naming every bad field of `s`. */
export function checkSpec(s: DraftSpec): void {
  const p = new Problems();
  if (s.name === undefined) p.add('name', 'is required');
  else if (!NAME_RE.test(s.name)) p.add('name', `expected [a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}, got "${s.name}"`);
  if (s.image === undefined) p.add('image', 'is required');
  else {
    const why = referenceProblem(s.image);
    if (why) p.add('image', why);
  }
  if (s.command !== undefined) {
    if (s.command.length === 0) p.add('command', 'must not be empty');
    s.command.forEach((a, i) => typeof a !== 'string' || a.includes('\0') ? p.add(`command[${i}]`, 'must be a string without NUL bytes') : undefined);
  }
  s.entrypoint?.forEach((a, i) => typeof a !== 'string' || a.includes('\0') ? p.add(`entrypoint[${i}]`, 'must be a string without NUL bytes') : undefined);
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
    if (v.idmap !== undefined && typeof v.idmap !== 'boolean') p.add(`volumes[${i}].idmap`, `expected true or false, got ${JSON.stringify(v.idmap)}`);
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
  if (s.terminal !== undefined && typeof s.terminal !== 'boolean') p.add('terminal', `expected true or false, got ${JSON.stringify(s.terminal)}`);
  if (s.init !== undefined && typeof s.init !== 'boolean') p.add('init', `expected true or false, got ${JSON.stringify(s.init)}`);
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
  integer('diskWeight', r.diskWeight, 1, 1000);
  positive('networkBandwidth', r.networkBandwidth, 400_000);
  if (r.networkBandwidth !== undefined && net !== 'bridge') p.add('networkBandwidth', 'needs network "bridge" (there is no link to shape otherwise)');
  integer('gpuCount', r.gpuCount, 0, 64);
  r.gpuDevices?.forEach((g, i) => integer(`gpuDevices[${i}]`, g, 0, 63));
  if (r.gpuDevices && r.gpuCount !== undefined && r.gpuCount !== r.gpuDevices.length) p.add('gpuCount', 'disagrees with the number of gpuDevices');
  if (r.gpuShare !== undefined) {
    integer('gpuShare.computePercent', r.gpuShare.computePercent, 1, 100);
    integer('gpuShare.memoryLimit', r.gpuShare.memoryLimit, 1024 * 1024, Number.MAX_SAFE_INTEGER);
  }
  if (r.gpuMig !== undefined) {
    if (r.gpuMig === null || typeof r.gpuMig !== 'object') p.add('gpuMig', 'expected { count, profile? }');
    else {
      if (r.gpuMig.count === undefined) p.add('gpuMig.count', 'required');
      else integer('gpuMig.count', r.gpuMig.count, 1, 64);
      if (r.gpuMig.profile !== undefined && (typeof r.gpuMig.profile !== 'string' || !MIG_PROFILE.test(r.gpuMig.profile))) p.add('gpuMig.profile', `expected a MIG profile like "1g.10gb", got ${JSON.stringify(r.gpuMig.profile)}`);
    }
  }
  s.devices?.forEach((d, i) => {
    if (typeof d !== 'string' || !parseQualifiedName(d)) p.add(`devices[${i}]`, `expected a CDI device name "vendor.com/class=name", got ${JSON.stringify(d)}`);
  });
  for (const k of Object.keys(s.labels)) if (!k || k.includes('\0')) p.add(`labels.${k}`, 'invalid label key');
  if (s.security !== undefined && !(s.security instanceof SecurityProfile)) SecurityProfile.check(s.security, 'security', p);
  if (s.restart !== undefined) {
    const rs = s.restart;
    if (!RESTART_POLICIES.includes(rs.policy)) p.add('restart.policy', `expected one of ${RESTART_POLICIES.join(', ')}, got ${JSON.stringify(rs.policy)}`);
    integer('restart.maxRetries', rs.maxRetries, 0, 1_000_000);
    integer('restart.initialBackoffMs', rs.initialBackoffMs, 1, 86_400_000);
    integer('restart.maxBackoffMs', rs.maxBackoffMs, 1, 86_400_000);
    if (rs.multiplier !== undefined && (typeof rs.multiplier !== 'number' || !(rs.multiplier >= 1 && rs.multiplier <= 100))) p.add('restart.multiplier', `expected a number in [1, 100], got ${rs.multiplier}`);
  }
  if (s.autoscale !== undefined && s.autoscale !== false) {
    integer('autoscale.maxMemoryBytes', s.autoscale.maxMemoryBytes, 4 * 1024 * 1024, Number.MAX_SAFE_INTEGER);
    positive('autoscale.maxCpus', s.autoscale.maxCpus, 4096);
    integer('autoscale.intervalMs', s.autoscale.intervalMs, 10, 3_600_000);
    if (r.memoryLimit === undefined && r.cpuLimit === undefined) p.add('autoscale', 'needs memoryLimit or cpuLimit: there is no limit to grow');
  }
  p.throwIfAny('invalid container configuration');
}
