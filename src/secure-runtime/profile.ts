/**
 * SecurityProfile: what a container may do, validated once, in one place. Defaults follow
 * Docker's (capabilities, seccomp, masked and read-only paths), with the deviations the
 * README lists; every invalid field is reported at once in a ConfigError.
 */
import { Problems } from '../errors.js';
import { DEFAULT_CAPABILITIES, type CapabilityName } from './capabilities.js';
import { checkSecurityOptions, type ProfileFields } from './profile-check.js';
import {
  DEFAULT_MASKED_PATHS,
  DEFAULT_READONLY_PATHS,
  DEFAULT_USERNS_SIZE,
  RLIM_INFINITY,
  type ResolvedRlimit,
  type RlimitSpec,
  type RlimitValue,
  type SecurityOptions,
} from './profile-options.js';
import type { SeccompProfile } from './seccomp-types.js';

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

  private constructor(f: ProfileFields) {
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
    const fields = checkSecurityOptions(options, field, problems);
    return fields && new SecurityProfile(fields);
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
