/**
 * SecurityProfile: what a container may do, validated once, in one place. Defaults follow
 * Docker's (capabilities, seccomp, masked and read-only paths), with the deviations the
 * README lists; every invalid field is reported at once in a ConfigError.
 */
import { Problems } from '../errors.js';
import {
  CAPABILITY_NAMES,
  DEFAULT_CAPABILITIES,
  normalizeCapability,
  sortCapabilities,
  type CapabilityName,
} from './capabilities.js';
import { checkSeccompProfile, describe, type SeccompProfile } from './seccomp.js';

/**
 * runc's and Docker's masked paths: kernel state that is global (not namespaced), leaks
 * host details, or has been an attack vector. /proc/interrupts and thermal_throttle leak
 * per-CPU activity of other tenants; powercap is CVE-2020-8694 (Platypus).
 * A `*` matches one path component; it is expanded against the host's /proc and /sys,
 * which are the same kernel's.
 */
export const DEFAULT_MASKED_PATHS: readonly string[] = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/interrupts',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/sys/devices/system/cpu/cpu*/thermal_throttle',
  '/sys/devices/virtual/powercap',
  '/sys/firmware',
];

/** Writable host-wide kernel knobs: /proc/sys (core_pattern, ...), sysrq-trigger, irq affinity. */
export const DEFAULT_READONLY_PATHS: readonly string[] = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** RLIMIT_* numbers as the generic Linux ABI (x86, arm, riscv...) has them. */
export const RLIMITS = {
  RLIMIT_CPU: 0,
  RLIMIT_FSIZE: 1,
  RLIMIT_DATA: 2,
  RLIMIT_STACK: 3,
  RLIMIT_CORE: 4,
  RLIMIT_RSS: 5,
  RLIMIT_NPROC: 6,
  RLIMIT_NOFILE: 7,
  RLIMIT_MEMLOCK: 8,
  RLIMIT_AS: 9,
  RLIMIT_LOCKS: 10,
  RLIMIT_SIGPENDING: 11,
  RLIMIT_MSGQUEUE: 12,
  RLIMIT_NICE: 13,
  RLIMIT_RTPRIO: 14,
  RLIMIT_RTTIME: 15,
} as const;
export type RlimitName = keyof typeof RLIMITS;

/** RLIM_INFINITY. */
export const RLIM_INFINITY = (1n << 64n) - 1n;

export type RlimitValue = number | bigint | 'unlimited';
export interface RlimitSpec {
  soft: RlimitValue;
  hard: RlimitValue;
}

export const DEFAULT_USERNS_SIZE = 65536;

/** The plain options a profile is built from; everything is optional. */
export interface SecurityOptions {
  /** Changes to the default set (Docker's --cap-add/--cap-drop); names with or without CAP_, or "ALL". */
  capabilities?: { add?: string[]; drop?: string[] };
  /** PR_SET_NO_NEW_PRIVS (default true): setuid binaries and file capabilities grant nothing. */
  noNewPrivileges?: boolean;
  /** 'default' (default), 'unconfined', or an OCI linux.seccomp object / its JSON text. */
  seccomp?: 'default' | 'unconfined' | SeccompProfile | string;
  /** Mount the root filesystem read-only (default false, as Docker). */
  readonlyRoot?: boolean;
  /** Replaces the default masked paths. */
  maskedPaths?: string[];
  /** Replaces the default read-only paths. */
  readonlyPaths?: string[];
  /** By name (RLIMIT_NOFILE or NOFILE); a number sets soft and hard alike. */
  rlimits?: Record<string, RlimitSpec | RlimitValue>;
  /**
   * Run in a user namespace (default on): root inside maps to an unprivileged host uid, so
   * an escape lands without host privileges. `size` ids are mapped (default 65536).
   */
  userNamespace?: boolean | { enabled?: boolean; size?: number };
}

export interface ResolvedRlimit {
  name: RlimitName;
  resource: number;
  soft: bigint;
  hard: bigint;
}


function checkRlimitValue(v: unknown, field: string, problems: Problems): bigint | undefined {
  if (v === 'unlimited' || v === 'infinity' || v === -1) return RLIM_INFINITY;
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  if (typeof v === 'bigint' && v >= 0n && v <= RLIM_INFINITY) return v;
  // Decimal text: what toJSON() writes for values JSON numbers cannot hold exactly.
  if (typeof v === 'string' && /^(?:0|[1-9]\d*)$/.test(v) && BigInt(v) <= RLIM_INFINITY) return BigInt(v);
  problems.add(field, `expected a non-negative integer or "unlimited", got ${describe(v)}`);
  return undefined;
}

function normalizeRlimitName(name: string): RlimitName | undefined {
  const upper = name.trim().toUpperCase();
  const full = upper.startsWith('RLIMIT_') ? upper : `RLIMIT_${upper}`;
  return full in RLIMITS ? (full as RlimitName) : undefined;
}

// A path the init resolves inside the container root; ".." and empty components would make
// the list mean something else than it says.
function checkContainerPath(v: unknown, field: string, problems: Problems, allowGlob: boolean): string | undefined {
  if (typeof v !== 'string' || !v.startsWith('/') || v.includes('\0') || v.length > 4095) {
    problems.add(field, `expected an absolute path, got ${describe(v)}`);
    return undefined;
  }
  const parts = v.split('/').slice(1);
  if (v !== '/' && parts.some((p) => p === '' || p === '.' || p === '..')) {
    problems.add(field, `expected a normalized absolute path (no "", "." or ".." components), got ${describe(v)}`);
    return undefined;
  }
  if (v.includes('*')) {
    if (!allowGlob) {
      problems.add(field, `"*" is not allowed here: ${describe(v)}`);
      return undefined;
    }
    // Only /proc and /sys are the host kernel's own view, so only there is a host-side
    // expansion the same as the container's.
    if (!(v.startsWith('/proc/') || v.startsWith('/sys/'))) {
      problems.add(field, `"*" is only expanded under /proc and /sys, got ${describe(v)}`);
      return undefined;
    }
  }
  if (v === '/') {
    problems.add(field, 'the root itself cannot be masked or made read-only here (use readonlyRoot)');
    return undefined;
  }
  return v;
}

function checkPathList(v: unknown, field: string, problems: Problems, allowGlob: boolean): string[] | undefined {
  if (!Array.isArray(v)) {
    problems.add(field, `expected an array of absolute paths, got ${describe(v)}`);
    return undefined;
  }
  const out: string[] = [];
  v.forEach((p, i) => {
    const ok = checkContainerPath(p, `${field}[${i}]`, problems, allowGlob);
    if (ok !== undefined && !out.includes(ok)) out.push(ok);
  });
  return out;
}

/** A validated, immutable set of security settings. */
export class SecurityProfile {
  /** The capability set (CAP_ names, in number order) before the running kernel is considered. */
  readonly capabilities: readonly CapabilityName[];
  readonly noNewPrivileges: boolean;
  /** 'default', 'unconfined' or a validated custom profile. */
  readonly seccomp: 'default' | 'unconfined' | SeccompProfile;
  readonly readonlyRoot: boolean;
  readonly maskedPaths: readonly string[];
  readonly readonlyPaths: readonly string[];
  readonly rlimits: readonly ResolvedRlimit[];
  readonly userNamespace: { readonly enabled: boolean; readonly size: number };

  private constructor(f: {
    capabilities: CapabilityName[];
    noNewPrivileges: boolean;
    seccomp: 'default' | 'unconfined' | SeccompProfile;
    readonlyRoot: boolean;
    maskedPaths: string[];
    readonlyPaths: string[];
    rlimits: ResolvedRlimit[];
    userNamespace: { enabled: boolean; size: number };
  }) {
    this.capabilities = Object.freeze(f.capabilities);
    this.noNewPrivileges = f.noNewPrivileges;
    this.seccomp = f.seccomp;
    this.readonlyRoot = f.readonlyRoot;
    this.maskedPaths = Object.freeze(f.maskedPaths);
    this.readonlyPaths = Object.freeze(f.readonlyPaths);
    this.rlimits = Object.freeze(f.rlimits);
    this.userNamespace = Object.freeze(f.userNamespace);
    Object.freeze(this);
  }

  /** Docker's defaults (see the README for where this runtime is stricter). */
  static default(): SecurityProfile {
    return SecurityProfile.from({});
  }

  static builder(): SecurityProfileBuilder {
    return new SecurityProfileBuilder();
  }

  /** Validates plain options (e.g. parsed JSON); throws a ConfigError naming every bad field. */
  static from(options: SecurityOptions | SecurityProfile | undefined, field = 'security'): SecurityProfile {
    if (options instanceof SecurityProfile) return options;
    const problems = new Problems();
    const p = SecurityProfile.check(options, field, problems);
    problems.throwIfAny('invalid security profile');
    return p!;
  }

  /** Accepts a SecurityProfile, plain options, or undefined (the default). */
  static resolve(value: unknown, field = 'security'): SecurityProfile {
    if (value instanceof SecurityProfile) return value;
    if (value === undefined || value === null) return SecurityProfile.default();
    return SecurityProfile.from(value as SecurityOptions, field);
  }

  /** Collects problems instead of throwing, for callers validating a larger configuration. */
  static check(options: unknown, field: string, problems: Problems): SecurityProfile | undefined {
    const before = problems.list.length;
    const o = (options ?? {}) as Record<string, unknown>;
    if (typeof o !== 'object' || Array.isArray(o)) {
      problems.add(field, `expected an object of security options, got ${describe(options)}`);
      return undefined;
    }
    const known = new Set(['capabilities', 'noNewPrivileges', 'seccomp', 'readonlyRoot', 'maskedPaths', 'readonlyPaths', 'rlimits', 'userNamespace']);
    for (const k of Object.keys(o)) if (!known.has(k)) problems.add(`${field}.${k}`, 'unknown field');

    const capabilities = checkCapabilities(o.capabilities, `${field}.capabilities`, problems);

    let noNewPrivileges = true;
    if (o.noNewPrivileges !== undefined) {
      if (typeof o.noNewPrivileges !== 'boolean') problems.add(`${field}.noNewPrivileges`, `expected a boolean, got ${describe(o.noNewPrivileges)}`);
      else noNewPrivileges = o.noNewPrivileges;
    }

    let seccomp: 'default' | 'unconfined' | SeccompProfile = 'default';
    if (o.seccomp === 'unconfined' || o.seccomp === 'default' || o.seccomp === undefined) {
      seccomp = (o.seccomp as 'default' | 'unconfined' | undefined) ?? 'default';
    } else {
      const parsed = checkSeccompProfile(o.seccomp, `${field}.seccomp`, problems);
      if (parsed) seccomp = parsed;
    }

    let readonlyRoot = false;
    if (o.readonlyRoot !== undefined) {
      if (typeof o.readonlyRoot !== 'boolean') problems.add(`${field}.readonlyRoot`, `expected a boolean, got ${describe(o.readonlyRoot)}`);
      else readonlyRoot = o.readonlyRoot;
    }

    const maskedPaths = o.maskedPaths === undefined ? [...DEFAULT_MASKED_PATHS] : checkPathList(o.maskedPaths, `${field}.maskedPaths`, problems, true);
    const readonlyPaths =
      o.readonlyPaths === undefined ? [...DEFAULT_READONLY_PATHS] : checkPathList(o.readonlyPaths, `${field}.readonlyPaths`, problems, false);

    const rlimits = checkRlimits(o.rlimits, `${field}.rlimits`, problems);

    let userNamespace = { enabled: true, size: DEFAULT_USERNS_SIZE };
    const u = o.userNamespace;
    if (typeof u === 'boolean') userNamespace = { enabled: u, size: DEFAULT_USERNS_SIZE };
    else if (typeof u === 'object' && u !== null && !Array.isArray(u)) {
      const uo = u as Record<string, unknown>;
      for (const k of Object.keys(uo)) if (k !== 'enabled' && k !== 'size') problems.add(`${field}.userNamespace.${k}`, 'unknown field');
      let enabled = true;
      if (uo.enabled !== undefined) {
        if (typeof uo.enabled !== 'boolean') problems.add(`${field}.userNamespace.enabled`, `expected a boolean, got ${describe(uo.enabled)}`);
        else enabled = uo.enabled;
      }
      let size = DEFAULT_USERNS_SIZE;
      if (uo.size !== undefined) {
        // uid_map counts are u32; 0xFFFFFFFF itself is the "no id" value.
        if (typeof uo.size !== 'number' || !Number.isInteger(uo.size) || uo.size < 1 || uo.size > 0xfffffffe) {
          problems.add(`${field}.userNamespace.size`, `expected an integer 1..4294967294, got ${describe(uo.size)}`);
        } else size = uo.size;
      }
      userNamespace = { enabled, size };
    } else if (u !== undefined) {
      problems.add(`${field}.userNamespace`, `expected a boolean or { enabled, size }, got ${describe(u)}`);
    }

    if (problems.list.length > before || !capabilities || !maskedPaths || !readonlyPaths || !rlimits) return undefined;
    return new SecurityProfile({ capabilities, noNewPrivileges, seccomp, readonlyRoot, maskedPaths, readonlyPaths, rlimits, userNamespace });
  }

  /**
   * Plain JSON-safe options that reproduce this profile (for state files): integers beyond
   * 2^53 are written as decimal strings, which from() accepts.
   */
  toJSON(): SecurityOptions {
    const o = this.toOptions();
    const safe = (v: RlimitValue): RlimitValue | string =>
      typeof v === 'bigint' ? (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString()) : v;
    const rlimits: Record<string, { soft: RlimitValue | string; hard: RlimitValue | string }> = {};
    for (const [k, r] of Object.entries(o.rlimits ?? {})) {
      const spec = r as RlimitSpec;
      rlimits[k] = { soft: safe(spec.soft), hard: safe(spec.hard) };
    }
    const seccomp =
      typeof o.seccomp === 'object'
        ? (JSON.parse(JSON.stringify(o.seccomp, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))) as SeccompProfile)
        : o.seccomp;
    return { ...o, rlimits: rlimits as Record<string, RlimitSpec>, seccomp };
  }

  /** The plain options that reproduce this profile (rlimits as bigints). */
  toOptions(): SecurityOptions {
    const have = new Set(this.capabilities);
    const def = new Set(DEFAULT_CAPABILITIES);
    const rlimits: Record<string, RlimitSpec> = {};
    for (const r of this.rlimits) {
      rlimits[r.name] = {
        soft: r.soft === RLIM_INFINITY ? 'unlimited' : r.soft,
        hard: r.hard === RLIM_INFINITY ? 'unlimited' : r.hard,
      };
    }
    return {
      capabilities: {
        add: this.capabilities.filter((c) => !def.has(c)),
        drop: DEFAULT_CAPABILITIES.filter((c) => !have.has(c)),
      },
      noNewPrivileges: this.noNewPrivileges,
      seccomp: this.seccomp,
      readonlyRoot: this.readonlyRoot,
      maskedPaths: [...this.maskedPaths],
      readonlyPaths: [...this.readonlyPaths],
      rlimits,
      userNamespace: { ...this.userNamespace },
    };
  }
}

/** Normalized names, index for index (undefined where the name is unknown). */
function checkNameList(v: unknown, field: string, problems: Problems): (CapabilityName | 'ALL' | undefined)[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) {
    problems.add(field, `expected an array of capability names, got ${describe(v)}`);
    return [];
  }
  return v.map((n, i) => {
    const c = typeof n === 'string' ? normalizeCapability(n) : undefined;
    if (c === undefined) problems.add(`${field}[${i}]`, `unknown capability ${describe(n)}`);
    return c;
  });
}

/** Docker's TweakCapabilities: add ALL = every capability but the dropped; drop ALL = only the added. */
function checkCapabilities(v: unknown, field: string, problems: Problems): CapabilityName[] | undefined {
  if (v === undefined) return [...sortCapabilities(DEFAULT_CAPABILITIES)];
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    problems.add(field, `expected { add?: string[], drop?: string[] }, got ${describe(v)}`);
    return undefined;
  }
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'add' && k !== 'drop') problems.add(`${field}.${k}`, 'unknown field (expected add or drop)');
  const before = problems.list.length;
  const add = checkNameList(o.add, `${field}.add`, problems);
  const drop = checkNameList(o.drop, `${field}.drop`, problems);
  if (add.includes('ALL') && drop.includes('ALL')) {
    problems.add(`${field}.add`, '"ALL" is both added and dropped');
  }
  const dropSet = new Set(drop);
  add.forEach((c, i) => {
    if (c !== undefined && c !== 'ALL' && dropSet.has(c)) problems.add(`${field}.add[${i}]`, `${c} is also in ${field}.drop`);
  });
  if (problems.list.length > before) return undefined;
  const added = add.filter((c): c is CapabilityName => c !== undefined && c !== 'ALL');
  let caps: CapabilityName[];
  if (add.includes('ALL')) caps = CAPABILITY_NAMES.filter((c) => !dropSet.has(c));
  else if (dropSet.has('ALL')) caps = added;
  else caps = [...DEFAULT_CAPABILITIES.filter((c) => !dropSet.has(c)), ...added];
  return sortCapabilities(caps);
}

function checkRlimits(v: unknown, field: string, problems: Problems): ResolvedRlimit[] | undefined {
  if (v === undefined) return [];
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    problems.add(field, `expected { RLIMIT_NOFILE: { soft, hard }, ... }, got ${describe(v)}`);
    return undefined;
  }
  const out: ResolvedRlimit[] = [];
  const seen = new Set<RlimitName>();
  const before = problems.list.length;
  for (const [key, spec] of Object.entries(v as Record<string, unknown>)) {
    const f = `${field}.${key}`;
    const name = normalizeRlimitName(key);
    if (!name) {
      problems.add(f, `unknown resource (expected one of ${Object.keys(RLIMITS).join(', ')})`);
      continue;
    }
    if (seen.has(name)) {
      problems.add(f, `${name} is given twice`);
      continue;
    }
    seen.add(name);
    let soft: bigint | undefined;
    let hard: bigint | undefined;
    if (typeof spec === 'object' && spec !== null && !Array.isArray(spec)) {
      const s = spec as Record<string, unknown>;
      for (const k of Object.keys(s)) if (k !== 'soft' && k !== 'hard') problems.add(`${f}.${k}`, 'unknown field (expected soft or hard)');
      if (s.soft === undefined) problems.add(`${f}.soft`, 'missing');
      else soft = checkRlimitValue(s.soft, `${f}.soft`, problems);
      if (s.hard === undefined) problems.add(`${f}.hard`, 'missing');
      else hard = checkRlimitValue(s.hard, `${f}.hard`, problems);
    } else {
      soft = hard = checkRlimitValue(spec, f, problems);
    }
    if (soft !== undefined && hard !== undefined) {
      // setrlimit(2) fails with EINVAL when soft > hard; say so here, with the field.
      if (soft > hard) problems.add(`${f}.soft`, `soft limit ${soft} is above the hard limit ${hard}`);
      else out.push({ name, resource: RLIMITS[name], soft, hard });
    }
  }
  if (problems.list.length > before) return undefined;
  return out.sort((a, b) => a.resource - b.resource);
}

/** Fluent construction; `build()` validates everything at once. */
export class SecurityProfileBuilder {
  private o: SecurityOptions = {};
  private add: string[] = [];
  private drop: string[] = [];

  addCapabilities(...names: string[]): this {
    this.add.push(...names);
    return this;
  }
  dropCapabilities(...names: string[]): this {
    this.drop.push(...names);
    return this;
  }
  noNewPrivileges(on = true): this {
    this.o.noNewPrivileges = on;
    return this;
  }
  seccomp(profile: 'default' | 'unconfined' | SeccompProfile | string): this {
    this.o.seccomp = profile;
    return this;
  }
  readonlyRoot(on = true): this {
    this.o.readonlyRoot = on;
    return this;
  }
  maskedPaths(paths: string[]): this {
    this.o.maskedPaths = [...paths];
    return this;
  }
  /** Adds to the masked paths (to the defaults unless maskedPaths() replaced them). */
  maskPath(...paths: string[]): this {
    this.o.maskedPaths = [...(this.o.maskedPaths ?? DEFAULT_MASKED_PATHS), ...paths];
    return this;
  }
  readonlyPaths(paths: string[]): this {
    this.o.readonlyPaths = [...paths];
    return this;
  }
  /** Adds to the read-only paths (to the defaults unless readonlyPaths() replaced them). */
  readonlyPath(...paths: string[]): this {
    this.o.readonlyPaths = [...(this.o.readonlyPaths ?? DEFAULT_READONLY_PATHS), ...paths];
    return this;
  }
  rlimit(name: string, soft: RlimitValue, hard: RlimitValue = soft): this {
    this.o.rlimits = { ...this.o.rlimits, [name]: { soft, hard } };
    return this;
  }
  userNamespace(enabled = true, size = DEFAULT_USERNS_SIZE): this {
    this.o.userNamespace = { enabled, size };
    return this;
  }
  build(): SecurityProfile {
    const options: SecurityOptions = { ...this.o };
    if (this.add.length > 0 || this.drop.length > 0) options.capabilities = { add: this.add, drop: this.drop };
    return SecurityProfile.from(options);
  }
}

