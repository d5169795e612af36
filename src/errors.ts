/**
 * The error model. Every failure the runtime reports is a RuntimeError (one closed set of
 * codes) or, for configuration, a ConfigError that lists every invalid field at once.
 * The native addon throws real RuntimeError instances: the class is handed to it at load.
 */

/** What went wrong, as a closed set callers can switch on. */
export const ERROR_CODES = [
  'ESYSCALL', // a system call failed; errno/syscall/path say which
  'ESPAWN', // a step between clone() and execve() failed in the container's init
  'ESTATE', // an operation is not allowed in the container's current state
  'ENOTFOUND', // no such container, image, user or file
  'EEXIST', // a container with that name or id exists already
  'EBUSY', // another operation holds the resource
  'ETIMEDOUT', // an operation did not finish in time
  'EPROTO', // the spawner answered something unexpected
  'ENOSPAWNER', // the spawner could not be started or reached
  'ELOAD', // the native addon could not be loaded
  'EINVAL', // an argument is out of range (see ConfigError for configuration)
  'EUNSUPPORTED', // the host lacks a kernel feature the request needs
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * The steps the container init runs between clone() and execve(), plus the host-side steps
 * around them. The C++ side (native/steps.h) carries the same list in the same order.
 */
export const STEPS = [
  'none',
  'sync',
  'setsid',
  'cgroupns',
  'mount-private',
  'overlay',
  'root-open',
  'mount',
  'bind',
  'symlink',
  'mask',
  'readonly',
  'pivot-root',
  'root-readonly',
  'loopback',
  'hostname',
  'rlimit',
  'setgroups',
  'setgid',
  'setuid',
  'capabilities',
  'no-new-privs',
  'chdir',
  'resolve-exec',
  'ready',
  'close-fds',
  'seccomp',
  'execve',
  'stdio',
  // host side
  'clone',
  'id-map',
  'cgroup',
  'image',
  'user',
  'volume',
  'config',
  'state',
  'spawner',
  'setns',
  'signal',
  'freezer',
  'cleanup',
  // the init again: CPU and memory placement
  'affinity',
  'mempolicy',
  // host side again: a container's own files, its bridge attachment
  'storage',
  'network',
  // checkpoint and restore through CRIU
  'checkpoint',
  'restore',
  // the init again: OCI mount propagation, device nodes, the process's umask
  'propagation',
  'mknod',
  'umask',
] as const;
export type Step = (typeof STEPS)[number];

export interface RuntimeErrorFields {
  code?: ErrorCode;
  step?: Step | undefined;
  errno?: string | undefined; // symbolic, e.g. "EINVAL"
  errnoNumber?: number | undefined;
  syscall?: string | undefined;
  path?: string | undefined;
  containerId?: string | undefined;
  cause?: unknown;
}

export class RuntimeError extends Error {
  override name = 'RuntimeError';
  readonly code: ErrorCode;
  readonly step: Step | undefined;
  readonly errno: string | undefined;
  readonly errnoNumber: number | undefined;
  readonly syscall: string | undefined;
  readonly path: string | undefined;
  containerId: string | undefined;

  constructor(message: string, fields: RuntimeErrorFields = {}) {
    super(message, fields.cause === undefined ? undefined : { cause: fields.cause });
    this.code = fields.code ?? 'ESYSCALL';
    this.step = fields.step;
    this.errno = fields.errno;
    this.errnoNumber = fields.errnoNumber;
    this.syscall = fields.syscall;
    this.path = fields.path;
    this.containerId = fields.containerId;
  }

  /** Adds the caller's context in front of the message, as crun's error wrapping does. */
  wrap(context: string): RuntimeError {
    this.message = `${context}: ${this.message}`;
    return this;
  }

  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      message: this.message,
      code: this.code,
      step: this.step,
      errno: this.errno,
      syscall: this.syscall,
      path: this.path,
      containerId: this.containerId,
    };
  }
}

/** Turns a Node.js system error (fs, net, child_process) into a RuntimeError. */
export function fromNodeError(err: unknown, step: Step, what: string): RuntimeError {
  if (err instanceof RuntimeError) return err;
  const e = err as NodeJS.ErrnoException;
  const errno = typeof e?.code === 'string' ? e.code : undefined;
  const path = typeof e?.path === 'string' ? e.path : undefined;
  const code: ErrorCode = errno === 'ENOENT' ? 'ENOTFOUND' : 'ESYSCALL';
  const reason = errno ?? (e instanceof Error ? e.message : String(err));
  return new RuntimeError(`${what}: ${reason}`, {
    code,
    step,
    errno,
    errnoNumber: typeof e?.errno === 'number' ? Math.abs(e.errno) : undefined,
    syscall: e?.syscall,
    path,
    cause: err,
  });
}

export interface FieldProblem {
  field: string;
  problem: string;
}

/** A configuration is invalid; `problems` lists every bad field, not just the first. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly code = 'EINVAL' as const;
  readonly problems: readonly FieldProblem[];

  constructor(what: string, problems: FieldProblem[]) {
    super(`${what}: ${problems.map((p) => `${p.field}: ${p.problem}`).join('; ')}`);
    this.problems = problems;
  }

  fields(): string[] {
    return this.problems.map((p) => p.field);
  }
}

/** Collects field problems and throws them together. */
export class Problems {
  readonly list: FieldProblem[] = [];
  add(field: string, problem: string): void {
    this.list.push({ field, problem });
  }
  get empty(): boolean {
    return this.list.length === 0;
  }
  throwIfAny(what: string): void {
    if (this.list.length > 0) throw new ConfigError(what, this.list);
  }
}
