/** Validation of plain security options: every bad field reported at once, normalized fields out. */
import type { Problems } from '../errors.js';
import {
  CAPABILITY_NAMES,
  DEFAULT_CAPABILITIES,
  normalizeCapability,
  sortCapabilities,
  type CapabilityName,
} from './capabilities.js';
import {
  DEFAULT_MASKED_PATHS,
  DEFAULT_READONLY_PATHS,
  DEFAULT_USERNS_SIZE,
  RLIMITS,
  RLIM_INFINITY,
  type ResolvedRlimit,
  type RlimitName,
} from './profile-options.js';
import { checkSeccompProfile, describe } from './seccomp-parse.js';
import type { SeccompProfile } from './seccomp-types.js';

/** What a SecurityProfile holds, validated and normalized. */
export interface ProfileFields {
  capabilities: CapabilityName[];
  noNewPrivileges: boolean;
  seccomp: 'default' | 'unconfined' | SeccompProfile;
  readonlyRoot: boolean;
  maskedPaths: string[];
  readonlyPaths: string[];
  rlimits: ResolvedRlimit[];
  userNamespace: { enabled: boolean; size: number };
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

/** The fields of a profile from plain options, or undefined (with the reasons in `problems`). */
export function checkSecurityOptions(options: unknown, field: string, problems: Problems): ProfileFields | undefined {
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
  return { capabilities, noNewPrivileges, seccomp, readonlyRoot, maskedPaths, readonlyPaths, rlimits, userNamespace };
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
