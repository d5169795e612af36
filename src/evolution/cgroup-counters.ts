/**
 * The counters an evolving container is measured by — CPU time, memory in use, OOM kills,
 * CPU throttling — read from its cgroup files through descriptors kept open, and read for
 * every container due in a tick with one native call (Kernel.readCounters: a pread each).
 *
 * Reads coalesce per turn of the event loop's microtask queue: the scheduler fires every
 * controller due at a grid point from one wake-up, each asks for its counters in its first
 * synchronous step, and the batch is read once after all of them have asked.
 */
import { constants } from 'node:os';
import { RuntimeError } from '../errors.js';
import type { Kernel } from '../kernel/kernel.js';
import type { CgroupLayout, Controller } from '../isolation/layout.js';

/** Cumulative counters of one cgroup; undefined where this host's cgroups do not give one. */
export interface CgroupCounters {
  cpuNs: number;
  memoryBytes: number;
  oomKills?: number;
  periods?: number;
  throttledPeriods?: number;
  throttledNs?: number;
}

type Field = keyof CgroupCounters;

interface FileSpec {
  controller: Controller;
  file: string;
  /** [key in the file ('' = the whole file), field, multiplier to the field's unit]. */
  values: [string, Field, number][];
  /** The counter is needed: without it the container cannot be measured. */
  required: boolean;
}

/** Which file gives which counter, per cgroup version of the controller that holds it. */
function fileSpecs(version: (c: Controller) => 1 | 2 | undefined): FileSpec[] {
  const out: FileSpec[] = [];
  const cpu = version('cpu');
  const cpuacct = version('cpuacct');
  const memory = version('memory');
  if (cpu === 2) {
    // v2's cpu.stat carries usage for every cgroup, and throttling once the cpu controller is on.
    out.push({ controller: 'cpu', file: 'cpu.stat', values: [['usage_usec', 'cpuNs', 1000], ['nr_periods', 'periods', 1], ['nr_throttled', 'throttledPeriods', 1], ['throttled_usec', 'throttledNs', 1000]], required: true });
  } else {
    if (cpuacct === 1) out.push({ controller: 'cpuacct', file: 'cpuacct.usage', values: [['', 'cpuNs', 1]], required: true });
    if (cpu === 1) out.push({ controller: 'cpu', file: 'cpu.stat', values: [['nr_periods', 'periods', 1], ['nr_throttled', 'throttledPeriods', 1], ['throttled_time', 'throttledNs', 1]], required: false });
  }
  if (memory === 1) {
    out.push({ controller: 'memory', file: 'memory.usage_in_bytes', values: [['', 'memoryBytes', 1]], required: true });
    out.push({ controller: 'memory', file: 'memory.oom_control', values: [['oom_kill', 'oomKills', 1]], required: false });
  } else if (memory === 2) {
    out.push({ controller: 'memory', file: 'memory.current', values: [['', 'memoryBytes', 1]], required: true });
    out.push({ controller: 'memory', file: 'memory.events', values: [['oom_kill', 'oomKills', 1]], required: false });
  }
  return out;
}

interface OpenFile {
  handle: number;
  path: string;
  values: [string, Field, number][];
}

interface Request {
  files: OpenFile[];
  resolve: (c: CgroupCounters) => void;
  reject: (e: unknown) => void;
}

/** The batch of one kernel: every container of every runtime on it shares it. */
export class CounterBatch {
  private queue: Request[] = [];
  private handles = new Int32Array(64);
  private out = new Float64Array(256);
  private errors = new Int32Array(64);
  /** Native reads made, for tests and statistics. */
  reads = 0;

  constructor(readonly kernel: Kernel) {}

  /** Opens the counter files of the cgroup whose directories `dirOf` gives; the optional ones only if they exist. */
  open(layout: CgroupLayout, dirOf: (mount: string) => string): ContainerCounters {
    const files: OpenFile[] = [];
    try {
      for (const spec of fileSpecs((c) => layout.controllers[c]?.version)) {
        const path = `${dirOf(layout.controllers[spec.controller]!.mount)}/${spec.file}`;
        let handle: number;
        try {
          handle = this.kernel.openCounter(path, spec.values.map((v) => v[0]));
        } catch (e) {
          if (!spec.required && e instanceof RuntimeError && e.code === 'ENOTFOUND') continue;
          throw e;
        }
        files.push({ handle, path, values: spec.values });
      }
    } catch (e) {
      for (const f of files) this.kernel.closeCounter(f.handle);
      throw e;
    }
    return new ContainerCounters(this, files);
  }

  /** @internal */
  request(files: OpenFile[]): Promise<CgroupCounters> {
    return new Promise((resolve, reject) => {
      if (this.queue.length === 0) queueMicrotask(() => this.flush());
      this.queue.push({ files, resolve, reject });
    });
  }

  /** @internal */
  close(files: OpenFile[]): void {
    for (const f of files) this.kernel.closeCounter(f.handle);
  }

  private flush(): void {
    const queue = this.queue;
    this.queue = [];
    let n = 0;
    let width = 0;
    for (const r of queue) {
      n += r.files.length;
      for (const f of r.files) width += f.values.length;
    }
    if (this.handles.length < n) {
      this.handles = new Int32Array(2 * n);
      this.errors = new Int32Array(2 * n);
    }
    if (this.out.length < width) this.out = new Float64Array(2 * width);
    let i = 0;
    for (const r of queue) for (const f of r.files) this.handles[i++] = f.handle;
    try {
      this.reads++;
      this.kernel.readCounters(this.handles.subarray(0, n), this.out, this.errors);
    } catch (e) {
      for (const r of queue) r.reject(e);
      return;
    }
    let h = 0;
    let at = 0;
    for (const r of queue) {
      const c: CgroupCounters = { cpuNs: 0, memoryBytes: 0 };
      let failed: RuntimeError | undefined;
      for (const f of r.files) {
        const err = this.errors[h++]!;
        if (err !== 0 && !failed) {
          const name = errnoName(err);
          failed = new RuntimeError(`pread \`${f.path}\`: ${name}${name === 'ENODEV' ? ' (the cgroup is gone)' : ''}`, { code: 'ESYSCALL', step: 'cgroup', path: f.path, syscall: 'pread', errno: name, errnoNumber: err });
        }
        for (const [, field, scale] of f.values) {
          const v = this.out[at++]!;
          if (!Number.isNaN(v)) c[field] = v * scale;
        }
      }
      if (failed) r.reject(failed);
      else r.resolve(c);
    }
  }
}

/** One container's open counter files. */
export class ContainerCounters {
  private closed = false;

  constructor(
    private readonly batch: CounterBatch,
    private readonly files: OpenFile[],
  ) {}

  /** The counters now, read with every other container's that asks in the same turn. */
  read(): Promise<CgroupCounters> {
    if (this.closed) return Promise.reject(new RuntimeError('counters read after close', { code: 'ESTATE', step: 'cgroup' }));
    return this.batch.request(this.files);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.batch.close(this.files);
  }
}

const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([k, v]) => [v, k]));
const errnoName = (n: number): string => ERRNO_NAMES.get(n) ?? `errno ${n}`;

const batches = new WeakMap<Kernel, CounterBatch>();

/** The batch of a kernel (one per process for the native kernel). */
export function counterBatch(kernel: Kernel): CounterBatch {
  let b = batches.get(kernel);
  if (!b) {
    b = new CounterBatch(kernel);
    batches.set(kernel, b);
  }
  return b;
}
