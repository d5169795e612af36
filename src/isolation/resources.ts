/**
 * The resource limits a container can have, and their validation. Every field is optional:
 * undefined leaves the kernel's default (unlimited) on create and the current value on
 * update; `UNLIMITED` (Infinity) removes a limit.
 */
import { Problems } from '../errors.js';

/** Removes a limit: cpu.max "max", memory.limit_in_bytes -1, pids.max "max", no throttle. */
export const UNLIMITED = Number.POSITIVE_INFINITY;

/**
 * One device-access rule. Rules are read in order and the last rule matching an access
 * decides it, on top of "deny everything" — the way v1's devices.deny "a" followed by
 * devices.allow lines behaves, and the way the v2 eBPF program is generated.
 */
export interface DeviceRule {
  allow: boolean;
  /** 'c' character, 'b' block, 'a' every device (major and minor must then be left out). */
  type: 'a' | 'c' | 'b';
  /** undefined matches every major ("*"). */
  major?: number;
  /** undefined matches every minor ("*"). */
  minor?: number;
  /** A non-empty subset of "rwm": read, write, mknod. */
  access: string;
}

export interface BlockIoLimit {
  /** "major:minor" of a whole disk; see blockDeviceFor(). */
  device: string;
  readIops?: number;
  writeIops?: number;
  readBps?: number;
  writeBps?: number;
}

/** A proportional block I/O weight for one device (the BFQ scheduler's per-device weight). */
export interface BlockIoWeightDevice {
  /** "major:minor" of a whole disk that uses the BFQ I/O scheduler. */
  device: string;
  /** 1..1000 (BFQ's range; default 100). */
  weight: number;
}

export interface HugetlbLimit {
  /** The kernel's spelling in file names: "2MB", "1GB", "64KB". */
  pageSize: string;
  /** Bytes. */
  limit: number;
}

export interface Resources {
  /** Cores, fractional: quota = round(cpuLimit × period), period cpuPeriod (default 100000 µs). */
  cpuLimit?: number;
  /**
   * The CFS period, µs (1000..1000000): cpu.cfs_period_us on v1, cpu.max's second field on v2.
   * Undefined: 100000. The OCI front end gives it with the bundle's quota so both are written as given.
   */
  cpuPeriod?: number;
  /** 1..10000, v2 semantics (default 100); v1 gets cpu.shares = weight × 1024 / 100. */
  cpuWeight?: number;
  /** Bytes. */
  memoryLimit?: number;
  /** Memory plus swap, bytes (≥ memoryLimit, which must be given with it). */
  memorySwap?: number;
  /** Bytes the container should keep under memory pressure: v1 soft limit, v2 memory.low. */
  memoryReservation?: number;
  pidsLimit?: number;
  /** A cpu list: "0-1", "0,2-3". */
  cpusetCpus?: string;
  /** A NUMA node list: "0". */
  cpusetMems?: string;
  blockIo?: BlockIoLimit[];
  /**
   * 1..1000, the container's share of disk time against its siblings under the BFQ I/O
   * scheduler (blkio.bfq.weight on v1, io.bfq.weight on v2; default 100). CFQ's blkio.weight
   * left the kernel in Linux 5.0.
   */
  blockIoWeight?: number;
  /** Per-device weights overriding blockIoWeight on those devices (each must use BFQ). */
  blockIoWeightDevice?: BlockIoWeightDevice[];
  /**
   * cgroup v2 files written as given, by name ("memory.high": "1G", "cgroup.max.depth": "3"):
   * OCI's linux.resources.unified. A key's controller must be on v2 here (named otherwise).
   */
  unified?: Record<string, string>;
  /** undefined on create: DEFAULT_DEVICE_RULES; on update: unchanged. */
  devices?: DeviceRule[];
  hugetlb?: HugetlbLimit[];
  /** µs, v1's cpu.rt_period_us (real-time group scheduling; refused on v2, which has none). */
  cpuRtPeriod?: number;
  /** µs of real-time run time per cpuRtPeriod, v1's cpu.rt_runtime_us (refused on v2). */
  cpuRtRuntime?: number;
  /** 0..100, v1's memory.swappiness (v2 has none: refused there). */
  memorySwappiness?: number;
  /** v1's memory.oom_control (1 disables the OOM killer); true is refused on v2, which has no such switch. */
  memoryOomKillDisable?: boolean;
  /** Bytes of kernel TCP buffer memory, v1's memory.kmem.tcp.limit_in_bytes (refused on v2). */
  memoryKernelTcp?: number;
  /**
   * Bytes of kernel memory, v1's memory.kmem.limit_in_bytes, written only where the file exists
   * (Linux 5.16+ keeps the file but ignores the limit; refused on v2).
   */
  memoryKernel?: number;
}

const KNOWN_FIELDS: readonly (keyof Resources)[] = [
  'cpuLimit',
  'cpuWeight',
  'memoryLimit',
  'memorySwap',
  'memoryReservation',
  'pidsLimit',
  'cpusetCpus',
  'cpusetMems',
  'blockIo',
  'blockIoWeight',
  'blockIoWeightDevice',
  'unified',
  'devices',
  'hugetlb',
  'cpuPeriod',
  'cpuRtPeriod',
  'cpuRtRuntime',
  'memorySwappiness',
  'memoryOomKillDisable',
  'memoryKernelTcp',
  'memoryKernel',
];

/** The v1 CFS period and v2 cpu.max period; 100 ms is the kernel's and runc's default. */
export const CPU_PERIOD_US = 100_000;
/** The kernel refuses quotas under 1 ms (kernel/sched/core.c, min_cfs_quota_period). */
const MIN_CPU_LIMIT = 1000 / CPU_PERIOD_US;
/** cpu.cfs_period_us's range (kernel/sched/core.c: 1 ms .. 1 s). */
const MIN_CPU_PERIOD_US = 1000;
const MAX_CPU_PERIOD_US = 1_000_000;
const MIB = 1024 * 1024;
/** Values a 64-bit kernel field can hold exactly and JavaScript can too. */
const MAX_EXACT = Number.MAX_SAFE_INTEGER;

const CPU_LIST_RE = /^\d+(?:-\d+)?(?:,\d+(?:-\d+)?)*$/;
const DEVICE_RE = /^\d+:\d+$/;
const PAGE_SIZE_RE = /^[1-9]\d*(?:KB|MB|GB)$/;

function isCount(v: unknown, min: number, allowUnlimited: boolean): boolean {
  if (typeof v !== 'number') return false;
  if (v === UNLIMITED) return allowUnlimited;
  return Number.isInteger(v) && v >= min && v <= MAX_EXACT;
}

function describe(v: unknown): string {
  if (v === UNLIMITED) return 'UNLIMITED';
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

/** Checks "0-3,5"-style lists, including that each range runs upwards. */
function checkList(problems: Problems, field: string, v: unknown): void {
  if (v === undefined) return;
  if (typeof v !== 'string' || !CPU_LIST_RE.test(v)) {
    problems.add(field, `expected a list like "0-3,6", got ${describe(v)}`);
    return;
  }
  for (const part of v.split(',')) {
    const [a, b] = part.split('-').map(Number);
    if (b !== undefined && b < a!) problems.add(field, `range "${part}" runs backwards`);
  }
}

function checkBytes(problems: Problems, field: string, v: unknown, min: number): void {
  if (v === undefined) return;
  if (!isCount(v, min, true)) {
    const hint = typeof v === 'number' && Number.isInteger(v) && v > 0 && v < min ? ` (${v} bytes — megabytes? use ${v} * 1024 * 1024)` : '';
    problems.add(field, `expected whole bytes ≥ ${min} or UNLIMITED, got ${describe(v)}${hint}`);
  }
}

/**
 * Each entry of a per-device list (blockIo, blockIoWeightDevice) as an object with a
 * "major:minor" device given once; `entry` checks the rest. `taken` says how a repeated
 * device is already used.
 */
function perDevice(problems: Problems, field: string, list: unknown, shape: string, taken: string, entry: (o: Record<string, unknown>, at: string) => void): void {
  if (list === undefined) return;
  if (!Array.isArray(list)) {
    problems.add(field, `expected an array of ${shape}`);
    return;
  }
  const seen = new Map<string, number>();
  list.forEach((e: unknown, i) => {
    const at = `${field}[${i}]`;
    if (typeof e !== 'object' || e === null) {
      problems.add(at, 'expected an object');
      return;
    }
    const o = e as Record<string, unknown>;
    if (typeof o.device !== 'string' || !DEVICE_RE.test(o.device)) {
      problems.add(`${at}.device`, `expected "major:minor", got ${describe(o.device)}`);
    } else if (seen.has(o.device)) {
      problems.add(`${at}.device`, `${o.device} ${taken} ${field}[${seen.get(o.device)}]`);
    } else {
      seen.set(o.device, i);
    }
    entry(o, at);
  });
}

function checkBlockIo(problems: Problems, list: unknown): void {
  perDevice(problems, 'blockIo', list, '{ device, readIops?, writeIops?, readBps?, writeBps? }', 'is already limited by', (o, at) => {
    let any = false;
    for (const k of ['readIops', 'writeIops', 'readBps', 'writeBps'] as const) {
      if (o[k] === undefined) continue;
      any = true;
      if (!isCount(o[k], 1, true)) problems.add(`${at}.${k}`, `expected a whole number ≥ 1 or UNLIMITED, got ${describe(o[k])}`);
    }
    for (const k of Object.keys(o)) {
      if (!['device', 'readIops', 'writeIops', 'readBps', 'writeBps'].includes(k)) problems.add(`${at}.${k}`, 'unknown field');
    }
    if (!any) problems.add(at, 'sets no limit (give readIops, writeIops, readBps or writeBps)');
  });
}

/** BFQ's weight range (block/bfq-iosched.h: BFQ_MIN_WEIGHT, BFQ_MAX_WEIGHT). */
const MIN_IO_WEIGHT = 1;
const MAX_IO_WEIGHT = 1000;
const isIoWeight = (v: unknown) => isCount(v, MIN_IO_WEIGHT, false) && (v as number) <= MAX_IO_WEIGHT;

function checkBlockIoWeights(problems: Problems, weight: unknown, list: unknown): void {
  if (weight !== undefined && !isIoWeight(weight)) {
    problems.add('blockIoWeight', `expected a whole number ${MIN_IO_WEIGHT}..${MAX_IO_WEIGHT}, got ${describe(weight)}`);
  }
  perDevice(problems, 'blockIoWeightDevice', list, '{ device, weight }', 'already has a weight in', (o, at) => {
    if (!isIoWeight(o.weight)) problems.add(`${at}.weight`, `expected a whole number ${MIN_IO_WEIGHT}..${MAX_IO_WEIGHT}, got ${describe(o.weight)}`);
    for (const k of Object.keys(o)) if (k !== 'device' && k !== 'weight') problems.add(`${at}.${k}`, 'unknown field');
  });
}

/** A v2 interface file's name: "<controller>.<file>" in the container's own directory. */
const UNIFIED_KEY_RE = /^[a-z][a-z0-9_]*\.[A-Za-z0-9_][A-Za-z0-9_.]*$/;
/**
 * Core files that place processes, enable controllers or change state: the runtime drives
 * them itself; a limit file is what unified is for.
 */
export const UNIFIED_RESERVED = ['cgroup.procs', 'cgroup.threads', 'cgroup.subtree_control', 'cgroup.type', 'cgroup.kill', 'cgroup.freeze', 'cgroup.controllers', 'cgroup.events', 'cgroup.stat'];

function checkUnified(problems: Problems, v: unknown): void {
  if (v === undefined) return;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    problems.add('unified', 'expected an object of cgroup v2 file names to values');
    return;
  }
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    const at = `unified[${JSON.stringify(k)}]`;
    if (!UNIFIED_KEY_RE.test(k)) problems.add(at, 'expected a cgroup v2 file name like "memory.high" (no path)');
    else if (UNIFIED_RESERVED.includes(k)) problems.add(at, `${k} is the runtime's to write (processes, controllers, state), not a limit`);
    if (typeof x !== 'string' || x.includes('\n') || x.trim() === '') problems.add(at, `expected a one-line value, got ${describe(x)}`);
  }
}

function checkDevices(problems: Problems, list: unknown): void {
  if (list === undefined) return;
  if (!Array.isArray(list)) {
    problems.add('devices', 'expected an array of { allow, type, major?, minor?, access }');
    return;
  }
  list.forEach((e: unknown, i) => {
    const at = `devices[${i}]`;
    if (typeof e !== 'object' || e === null) {
      problems.add(at, 'expected an object');
      return;
    }
    const o = e as Record<string, unknown>;
    if (typeof o.allow !== 'boolean') problems.add(`${at}.allow`, `expected true or false, got ${describe(o.allow)}`);
    if (o.type !== 'a' && o.type !== 'b' && o.type !== 'c') problems.add(`${at}.type`, `expected "a", "b" or "c", got ${describe(o.type)}`);
    for (const k of ['major', 'minor'] as const) {
      if (o[k] === undefined) continue;
      if (o.type === 'a') problems.add(`${at}.${k}`, 'type "a" matches every device; leave major and minor out');
      else if (!isCount(o[k], 0, false) || (o[k] as number) > 0xfffff) problems.add(`${at}.${k}`, `expected 0..1048575, got ${describe(o[k])}`);
    }
    const access = o.access;
    if (typeof access !== 'string' || !/^[rwm]{1,3}$/.test(access) || new Set(access).size !== access.length) {
      problems.add(`${at}.access`, `expected a non-empty subset of "rwm", got ${describe(access)}`);
    }
  });
}

function checkHugetlb(problems: Problems, list: unknown): void {
  if (list === undefined) return;
  if (!Array.isArray(list)) {
    problems.add('hugetlb', 'expected an array of { pageSize, limit }');
    return;
  }
  const seen = new Map<string, number>();
  list.forEach((e: unknown, i) => {
    const at = `hugetlb[${i}]`;
    if (typeof e !== 'object' || e === null) {
      problems.add(at, 'expected an object');
      return;
    }
    const o = e as Record<string, unknown>;
    if (typeof o.pageSize !== 'string' || !PAGE_SIZE_RE.test(o.pageSize)) {
      problems.add(`${at}.pageSize`, `expected a size like "2MB" or "1GB", got ${describe(o.pageSize)}`);
    } else if (seen.has(o.pageSize)) {
      problems.add(`${at}.pageSize`, `${o.pageSize} is already limited by hugetlb[${seen.get(o.pageSize)}]`);
    } else {
      seen.set(o.pageSize, i);
    }
    if (!isCount(o.limit, 0, true)) problems.add(`${at}.limit`, `expected whole bytes or UNLIMITED, got ${describe(o.limit)}`);
  });
}

/**
 * Lists every problem with `r` (all at once); an empty list means valid. Whether a cpu or node
 * exists is the kernel's to say, at the write.
 */
export function resourceProblems(r: unknown): Problems {
  const problems = new Problems();
  if (typeof r !== 'object' || r === null || Array.isArray(r)) {
    problems.add('resources', 'expected an object');
    return problems;
  }
  const o = r as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!(KNOWN_FIELDS as readonly string[]).includes(k) && o[k] !== undefined) {
      const near = KNOWN_FIELDS.find((f) => f.toLowerCase() === k.replace(/_/g, '').toLowerCase());
      problems.add(k, near ? `unknown field (did you mean ${near}?)` : 'unknown field');
    }
  }
  const period = isCount(o.cpuPeriod, MIN_CPU_PERIOD_US, false) && (o.cpuPeriod as number) <= MAX_CPU_PERIOD_US ? (o.cpuPeriod as number) : CPU_PERIOD_US;
  if (o.cpuPeriod !== undefined && period !== o.cpuPeriod) {
    problems.add('cpuPeriod', `expected whole µs ${MIN_CPU_PERIOD_US}..${MAX_CPU_PERIOD_US}, got ${describe(o.cpuPeriod)}`);
  }
  const cpu = o.cpuLimit;
  const minCpu = o.cpuPeriod === undefined ? MIN_CPU_LIMIT : 1000 / period;
  // With a period given, the quota as written (rounded) is what must reach 1 ms.
  const tooSmall = (c: number) => (o.cpuPeriod === undefined ? c < MIN_CPU_LIMIT : Math.round(c * period) < MIN_CPU_PERIOD_US);
  if (cpu !== undefined && (typeof cpu !== 'number' || Number.isNaN(cpu) || tooSmall(cpu) || (cpu !== UNLIMITED && cpu * period > MAX_EXACT))) {
    problems.add('cpuLimit', `expected cores ≥ ${minCpu} (the kernel's 1 ms minimum quota) or UNLIMITED, got ${describe(cpu)}`);
  }
  if (o.cpuRtPeriod !== undefined && (!isCount(o.cpuRtPeriod, 1, false) || (o.cpuRtPeriod as number) > 2 ** 31 - 1)) {
    problems.add('cpuRtPeriod', `expected whole µs 1..${2 ** 31 - 1}, got ${describe(o.cpuRtPeriod)}`);
  }
  if (o.cpuRtRuntime !== undefined && !isCount(o.cpuRtRuntime, 0, false)) {
    problems.add('cpuRtRuntime', `expected whole µs ≥ 0, got ${describe(o.cpuRtRuntime)}`);
  }
  if (o.memorySwappiness !== undefined && (!isCount(o.memorySwappiness, 0, false) || (o.memorySwappiness as number) > 100)) {
    problems.add('memorySwappiness', `expected a whole number 0..100, got ${describe(o.memorySwappiness)}`);
  }
  if (o.memoryOomKillDisable !== undefined && typeof o.memoryOomKillDisable !== 'boolean') {
    problems.add('memoryOomKillDisable', `expected true or false, got ${describe(o.memoryOomKillDisable)}`);
  }
  checkBytes(problems, 'memoryKernelTcp', o.memoryKernelTcp, 0);
  checkBytes(problems, 'memoryKernel', o.memoryKernel, 0);
  if (o.cpuWeight !== undefined && (!isCount(o.cpuWeight, 1, false) || (o.cpuWeight as number) > 10000)) {
    problems.add('cpuWeight', `expected a whole number 1..10000, got ${describe(o.cpuWeight)}`);
  }
  checkBytes(problems, 'memoryLimit', o.memoryLimit, MIB);
  checkBytes(problems, 'memorySwap', o.memorySwap, MIB);
  checkBytes(problems, 'memoryReservation', o.memoryReservation, 0);
  // Relations are checked only between values that are valid on their own.
  const ok = (v: unknown, min: number) => (isCount(v, min, true) ? (v as number) : undefined);
  const mem = ok(o.memoryLimit, MIB);
  const swap = ok(o.memorySwap, MIB);
  const res = ok(o.memoryReservation, 0);
  if (swap !== undefined) {
    // v2 expresses swap as swap.max = memorySwap - memoryLimit, so both must be known together.
    if (o.memoryLimit === undefined) problems.add('memorySwap', 'needs memoryLimit in the same call (v2 writes their difference)');
    else if (mem === UNLIMITED && swap !== UNLIMITED) problems.add('memorySwap', 'must be UNLIMITED when memoryLimit is');
    else if (mem !== undefined && swap < mem) problems.add('memorySwap', `must be ≥ memoryLimit (${describe(swap)} < ${describe(mem)})`);
  }
  if (res !== undefined && mem !== undefined && res !== UNLIMITED && res > mem) {
    problems.add('memoryReservation', `must be ≤ memoryLimit (${describe(res)} > ${describe(mem)})`);
  }
  if (o.pidsLimit !== undefined && !isCount(o.pidsLimit, 1, true)) {
    problems.add('pidsLimit', `expected a whole number ≥ 1 or UNLIMITED, got ${describe(o.pidsLimit)}`);
  }
  checkList(problems, 'cpusetCpus', o.cpusetCpus);
  checkList(problems, 'cpusetMems', o.cpusetMems);
  checkBlockIo(problems, o.blockIo);
  checkBlockIoWeights(problems, o.blockIoWeight, o.blockIoWeightDevice);
  checkUnified(problems, o.unified);
  checkDevices(problems, o.devices);
  checkHugetlb(problems, o.hugetlb);
  return problems;
}

/** Throws one ConfigError naming every bad field. */
export function validateResources(r: unknown, what = 'invalid container resources'): asserts r is Resources {
  resourceProblems(r).throwIfAny(what);
}
