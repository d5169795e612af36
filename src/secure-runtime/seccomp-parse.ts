/** Validation of user-supplied seccomp profiles: every bad field named, a normalized copy out. */
import { ConfigError, Problems } from '../errors.js';
import type { OciSeccompArg } from '../kernel/native.js';
import { normalizeCapability } from './capabilities.js';
import {
  SECCOMP_ACTIONS,
  SECCOMP_ARCHES,
  SECCOMP_FLAGS,
  SECCOMP_OPS,
  type SeccompArchMapEntry,
  type SeccompCondition,
  type SeccompProfile,
  type SeccompRule,
} from './seccomp-types.js';

const MAX_U64 = (1n << 64n) - 1n;
const NAME_RE = /^[a-z_][a-z0-9_]*$/;
const KERNEL_RE = /^\d+\.\d+(?:\.\d+)?$/;
const TOP_KEYS = new Set(['defaultAction', 'defaultErrnoRet', 'architectures', 'archMap', 'flags', 'syscalls', 'listenerPath', 'listenerMetadata']);
const RULE_KEYS = new Set(['names', 'name', 'action', 'errnoRet', 'args', 'comment', 'includes', 'excludes']);
const ARG_KEYS = new Set(['index', 'value', 'valueTwo', 'op']);
const COND_KEYS = new Set(['caps', 'arches', 'minKernel']);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A value as a message shows it (bigints with their n). */
export function describe(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`;
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

function unknownKeys(o: Record<string, unknown>, allowed: Set<string>, field: string, problems: Problems): void {
  for (const k of Object.keys(o)) {
    if (!allowed.has(k)) problems.add(`${field}.${k}`, 'unknown field');
  }
}

function checkErrno(v: unknown, field: string, problems: Problems): number | undefined {
  if (v === undefined) return undefined;
  // The kernel clamps SECCOMP_RET_ERRNO data to MAX_ERRNO (4095).
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 4095) {
    problems.add(field, `expected an errno number 0..4095, got ${describe(v)}`);
    return undefined;
  }
  return v;
}

function checkAction(v: unknown, field: string, problems: Problems): string | undefined {
  if (typeof v !== 'string') {
    problems.add(field, `expected one of ${SECCOMP_ACTIONS.join(', ')}, got ${describe(v)}`);
    return undefined;
  }
  if (v === 'SCMP_ACT_NOTIFY') {
    problems.add(field, 'SCMP_ACT_NOTIFY needs a seccomp agent, which this runtime does not run');
    return undefined;
  }
  if (!(SECCOMP_ACTIONS as readonly string[]).includes(v)) {
    problems.add(field, `expected one of ${SECCOMP_ACTIONS.join(', ')}, got ${describe(v)}`);
    return undefined;
  }
  return v;
}

function checkU64(v: unknown, field: string, problems: Problems): number | bigint | undefined {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 0) problems.add(field, `expected a non-negative integer, got ${describe(v)}`);
    else if (!Number.isSafeInteger(v)) problems.add(field, `${v} is beyond 2^53 and lost precision in JSON; give it as a decimal string or a bigint`);
    else return v;
    return undefined;
  }
  let b: bigint | undefined;
  if (typeof v === 'bigint') b = v;
  else if (typeof v === 'string' && /^(?:0|[1-9]\d*|0x[0-9a-fA-F]+)$/.test(v)) b = BigInt(v);
  if (b === undefined || b < 0n || b > MAX_U64) {
    problems.add(field, `expected an integer 0..2^64-1, got ${describe(v)}`);
    return undefined;
  }
  return b;
}

function checkCondition(v: unknown, field: string, problems: Problems): SeccompCondition | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) {
    problems.add(field, `expected an object with caps, arches or minKernel, got ${describe(v)}`);
    return undefined;
  }
  unknownKeys(v, COND_KEYS, field, problems);
  const out: SeccompCondition = {};
  if (v.caps !== undefined) {
    if (!Array.isArray(v.caps)) problems.add(`${field}.caps`, 'expected an array of capability names');
    else {
      out.caps = [];
      v.caps.forEach((c, i) => {
        const n = typeof c === 'string' ? normalizeCapability(c) : undefined;
        if (n === undefined || n === 'ALL') problems.add(`${field}.caps[${i}]`, `unknown capability ${describe(c)}`);
        else out.caps!.push(n);
      });
    }
  }
  if (v.arches !== undefined) {
    if (!Array.isArray(v.arches) || v.arches.some((a) => typeof a !== 'string')) {
      problems.add(`${field}.arches`, 'expected an array of architecture names (amd64, arm64, x86, ...)');
    } else out.arches = [...(v.arches as string[])];
  }
  if (v.minKernel !== undefined) {
    if (typeof v.minKernel !== 'string' || !KERNEL_RE.test(v.minKernel)) {
      problems.add(`${field}.minKernel`, `expected a kernel version like "5.8", got ${describe(v.minKernel)}`);
    } else out.minKernel = v.minKernel;
  }
  return out;
}

function checkArch(v: unknown, field: string, problems: Problems): string | undefined {
  if (typeof v !== 'string' || !(SECCOMP_ARCHES as readonly string[]).includes(v)) {
    problems.add(field, `unknown architecture ${describe(v)} (expected SCMP_ARCH_X86_64, SCMP_ARCH_AARCH64, ...)`);
    return undefined;
  }
  return v;
}

function checkRule(v: unknown, field: string, problems: Problems): SeccompRule | undefined {
  if (!isObject(v)) {
    problems.add(field, `expected an object with names and action, got ${describe(v)}`);
    return undefined;
  }
  unknownKeys(v, RULE_KEYS, field, problems);
  const names: string[] = [];
  if (v.names === undefined && typeof v.name === 'string') {
    // Docker's older spelling: one rule per syscall.
    if (!NAME_RE.test(v.name)) problems.add(`${field}.name`, `not a syscall name: ${describe(v.name)}`);
    else names.push(v.name);
  } else if (!Array.isArray(v.names) || v.names.length === 0) {
    problems.add(`${field}.names`, 'expected a non-empty array of syscall names');
  } else {
    v.names.forEach((n, i) => {
      if (typeof n !== 'string' || !NAME_RE.test(n)) problems.add(`${field}.names[${i}]`, `not a syscall name: ${describe(n)}`);
      else names.push(n);
    });
  }
  const action = checkAction(v.action, `${field}.action`, problems);
  const errnoRet = checkErrno(v.errnoRet, `${field}.errnoRet`, problems);
  if (errnoRet !== undefined && action !== undefined && action !== 'SCMP_ACT_ERRNO' && action !== 'SCMP_ACT_TRACE') {
    problems.add(`${field}.errnoRet`, `only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, the action is ${action}`);
  }
  const args: OciSeccompArg[] = [];
  if (v.args !== undefined && v.args !== null) {
    if (!Array.isArray(v.args)) problems.add(`${field}.args`, 'expected an array');
    else {
      v.args.forEach((a, i) => {
        const af = `${field}.args[${i}]`;
        if (!isObject(a)) {
          problems.add(af, `expected an object with index, value and op, got ${describe(a)}`);
          return;
        }
        unknownKeys(a, ARG_KEYS, af, problems);
        const index = a.index;
        if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index > 5) {
          problems.add(`${af}.index`, `expected an argument index 0..5, got ${describe(index)}`);
        }
        const value = checkU64(a.value, `${af}.value`, problems);
        const valueTwo = a.valueTwo === undefined ? undefined : checkU64(a.valueTwo, `${af}.valueTwo`, problems);
        const op = a.op;
        if (typeof op !== 'string' || !(SECCOMP_OPS as readonly string[]).includes(op)) {
          problems.add(`${af}.op`, `expected one of ${SECCOMP_OPS.join(', ')}, got ${describe(op)}`);
        }
        if (value !== undefined && typeof index === 'number' && typeof op === 'string') {
          const arg: OciSeccompArg = { index, value, op };
          if (valueTwo !== undefined) arg.valueTwo = valueTwo;
          args.push(arg);
        }
      });
    }
  }
  const includes = checkCondition(v.includes, `${field}.includes`, problems);
  const excludes = checkCondition(v.excludes, `${field}.excludes`, problems);
  if (v.comment !== undefined && typeof v.comment !== 'string') problems.add(`${field}.comment`, 'expected a string');
  if (action === undefined) return undefined;
  const rule: SeccompRule = { names, action };
  if (errnoRet !== undefined) rule.errnoRet = errnoRet;
  if (args.length > 0) rule.args = args;
  if (typeof v.comment === 'string') rule.comment = v.comment;
  if (includes) rule.includes = includes;
  if (excludes) rule.excludes = excludes;
  return rule;
}

/**
 * Validates a seccomp profile into `problems` (fields named from `field`, e.g.
 * `seccomp.syscalls[3].action`) and returns its normalized copy, or undefined when invalid.
 */
export function checkSeccompProfile(input: unknown, field: string, problems: Problems): SeccompProfile | undefined {
  let v = input;
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch (e) {
      problems.add(field, `not valid JSON: ${(e as Error).message}`);
      return undefined;
    }
  }
  if (!isObject(v)) {
    problems.add(field, `expected an OCI linux.seccomp object, 'default' or 'unconfined', got ${describe(v)}`);
    return undefined;
  }
  const before = problems.list.length;
  unknownKeys(v, TOP_KEYS, field, problems);
  const defaultAction = checkAction(v.defaultAction, `${field}.defaultAction`, problems);
  const defaultErrnoRet = checkErrno(v.defaultErrnoRet, `${field}.defaultErrnoRet`, problems);
  let architectures: string[] | undefined;
  if (v.architectures !== undefined && v.architectures !== null) {
    if (!Array.isArray(v.architectures)) problems.add(`${field}.architectures`, 'expected an array');
    else architectures = v.architectures.map((a, i) => checkArch(a, `${field}.architectures[${i}]`, problems) ?? '');
  }
  let archMap: SeccompArchMapEntry[] | undefined;
  if (v.archMap !== undefined && v.archMap !== null) {
    if (!Array.isArray(v.archMap)) problems.add(`${field}.archMap`, 'expected an array');
    else {
      if (architectures && architectures.length > 0) {
        problems.add(`${field}.archMap`, 'give either architectures or archMap, not both');
      }
      archMap = v.archMap.map((e, i) => {
        const ef = `${field}.archMap[${i}]`;
        if (!isObject(e)) {
          problems.add(ef, 'expected an object with architecture and subArchitectures');
          return { architecture: '', subArchitectures: null };
        }
        const architecture = checkArch(e.architecture, `${ef}.architecture`, problems) ?? '';
        let subArchitectures: string[] | null = null;
        if (e.subArchitectures !== undefined && e.subArchitectures !== null) {
          if (!Array.isArray(e.subArchitectures)) problems.add(`${ef}.subArchitectures`, 'expected an array or null');
          else subArchitectures = e.subArchitectures.map((a, k) => checkArch(a, `${ef}.subArchitectures[${k}]`, problems) ?? '');
        }
        return { architecture, subArchitectures };
      });
    }
  }
  let flags: string[] | undefined;
  if (v.flags !== undefined && v.flags !== null) {
    if (!Array.isArray(v.flags)) problems.add(`${field}.flags`, 'expected an array');
    else {
      flags = [];
      v.flags.forEach((f, i) => {
        if (typeof f !== 'string' || !(SECCOMP_FLAGS as readonly string[]).includes(f)) {
          problems.add(`${field}.flags[${i}]`, `unknown flag ${describe(f)} (expected one of ${SECCOMP_FLAGS.join(', ')})`);
        } else flags!.push(f);
      });
    }
  }
  for (const k of ['listenerPath', 'listenerMetadata'] as const) {
    if (v[k] !== undefined && v[k] !== '') problems.add(`${field}.${k}`, 'seccomp notify agents are not supported by this runtime');
  }
  const syscalls: SeccompRule[] = [];
  if (v.syscalls !== undefined && v.syscalls !== null) {
    if (!Array.isArray(v.syscalls)) problems.add(`${field}.syscalls`, 'expected an array of rules');
    else v.syscalls.forEach((r, i) => {
      const rule = checkRule(r, `${field}.syscalls[${i}]`, problems);
      if (rule) syscalls.push(rule);
    });
  }
  if (problems.list.length > before || defaultAction === undefined) return undefined;
  const out: SeccompProfile = { defaultAction, syscalls };
  if (defaultErrnoRet !== undefined) out.defaultErrnoRet = defaultErrnoRet;
  if (architectures) out.architectures = architectures;
  if (archMap) out.archMap = archMap;
  if (flags) out.flags = flags;
  return out;
}

/**
 * Validates an OCI `linux.seccomp` object (or its JSON text); Docker's profile extensions
 * (archMap, includes/excludes) are accepted. Throws a ConfigError naming every bad field.
 */
export function parseOciSeccomp(input: unknown, field = 'seccomp'): SeccompProfile {
  const problems = new Problems();
  const out = checkSeccompProfile(input, field, problems);
  problems.throwIfAny('invalid seccomp profile');
  if (!out) throw new ConfigError('invalid seccomp profile', [{ field, problem: 'invalid' }]);
  return out;
}
