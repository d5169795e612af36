/**
 * The cgroup driver: one directory per container in every hierarchy, under one parent the
 * runtime owns. Limits are written as the mapping table says, through the backend (v1 or v2)
 * that holds each controller on this host.
 */
import { RuntimeError } from '../errors.js';
import type { Kernel } from '../kernel/kernel.js';
import type { Backend, CgroupStats, DirReader } from './backend.js';
import { DEFAULT_DEVICE_RULES } from './devices.js';
import { CONTROLLERS, hierarchies, type Binding, type CgroupLayout, type Controller } from './layout.js';
import { BPF_DEVICE_PROGRAM, RESOURCE_MAP, type Write } from './mapping.js';
import { validateResources, type DeviceRule, type Resources } from './resources.js';
import { V1 } from './v1.js';
import { V2 } from './v2.js';

/** Attaches a BPF_PROG_TYPE_CGROUP_DEVICE program to a v2 cgroup (the addon's attachDeviceProgram). */
export interface DeviceProgramLoader {
  /** Enforces `rules` on the cgroup directory, replacing the program attached there before. */
  attachDeviceProgram(cgroupDir: string, rules: readonly DeviceRule[]): void;
}

export interface CgroupDriverOptions {
  /** Needed for device rules wherever v2 holds device access; without it they fail EUNSUPPORTED. */
  devicePrograms?: DeviceProgramLoader;
  /**
   * Lets the driver write +controller into cgroup.subtree_control of the directories above its
   * parent, up to the mount root, as runc's cgroupfs driver does. Off by default: those
   * cgroups belong to whoever made them (systemd, the machine's own agent).
   */
  enableAncestorControllers?: boolean;
  /** How long freeze() waits for every task to stop (default 5000 ms). */
  freezeTimeoutMs?: number;
  /** How long destroy() retries EBUSY while exiting tasks leave (default 2000 ms). */
  destroyTimeoutMs?: number;
  /** Replaceable for tests. */
  sleep?: (ms: number) => Promise<void>;
}

export interface CreatedCgroup {
  /** The cgroup.procs file of every hierarchy: the spawner writes the init pid into each. */
  procsFiles: string[];
  /** The container's directory in every hierarchy (the v2 one is last: clone3 CLONE_INTO_CGROUP). */
  dirs: string[];
}

interface Hierarchy {
  binding: Binding;
  backend: Backend;
  controllers: Controller[];
}

interface Planned {
  h: Hierarchy;
  write: Write;
  /** The file's full path; for the device program, the cgroup directory. */
  path: string;
  mayBeMissing: boolean;
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/;
const PARENT_RE = /^[A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)*$/;
const STAT_CONTROLLERS: readonly Controller[] = ['cpu', 'cpuacct', 'memory', 'pids', 'blkio'];

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function errnoOf(e: unknown): string | undefined {
  return e instanceof RuntimeError ? e.errno : undefined;
}

export class CgroupDriver {
  readonly layout: CgroupLayout;
  readonly parent: string;
  private readonly kernel: Kernel;
  private readonly options: CgroupDriverOptions;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly hier: Hierarchy[];
  private readonly statTargets: { controller: Controller; h: Hierarchy }[];
  /** Controllers bound to v2 that the ancestors do not pass down to the parent. */
  private readonly undelegated = new Set<Controller>();
  private parentReady = false;

  constructor(kernel: Kernel, layout: CgroupLayout, parent = 'stratoswarm', options: CgroupDriverOptions = {}) {
    if (!PARENT_RE.test(parent) || parent.split('/').some((c) => c === '.' || c === '..')) {
      throw new RuntimeError(`cgroup parent ${JSON.stringify(parent)}: expected a relative path like "stratoswarm"`, { code: 'EINVAL', step: 'cgroup' });
    }
    this.kernel = kernel;
    this.layout = layout;
    this.parent = parent;
    this.options = options;
    this.sleep = options.sleep ?? defaultSleep;
    this.hier = hierarchies(layout).map((binding) => ({
      binding,
      backend: binding.version === 1 ? V1 : V2,
      controllers: CONTROLLERS.filter((c) => {
        const b = layout.controllers[c];
        return b !== undefined && b.version === binding.version && b.mount === binding.mount;
      }),
    }));
    if (this.hier.length === 0) {
      throw new RuntimeError('no cgroup hierarchy is mounted (neither cgroup nor cgroup2 in /proc/self/mountinfo)', { code: 'EUNSUPPORTED', step: 'cgroup' });
    }
    this.statTargets = [];
    for (const c of STAT_CONTROLLERS) {
      const h = this.hierarchyOf(c);
      // On v2 cpu.stat serves both cpu and cpuacct; read it once.
      if (!h || (c === 'cpuacct' && h.binding.version === 2 && this.hierarchyOf('cpu')?.binding.version === 2)) continue;
      this.statTargets.push({ controller: c, h });
    }
  }

  /** Throws a ConfigError naming every bad field. */
  validate(r: Resources): void {
    validateResources(r);
  }

  /** The container's directory in every hierarchy. */
  dirs(id: string): string[] {
    this.checkId(id);
    return this.hier.map((h) => this.dirIn(h, id));
  }

  /** Makes the container's cgroup in every hierarchy and writes its limits; undoes it all on failure. */
  create(id: string, r: Resources = {}): CreatedCgroup {
    this.checkId(id);
    validateResources(r);
    this.ensureParent();
    const existing = this.hier.map((h) => this.dirIn(h, id)).filter((d) => this.kernel.exists(d));
    if (existing.length > 0) {
      throw new RuntimeError(`cgroup of container "${id}" exists already (${existing[0]}); destroy it first`, {
        code: 'EEXIST',
        step: 'cgroup',
        path: existing[0],
        containerId: id,
      });
    }
    const plan = this.plan(id, { ...r, devices: r.devices ?? [...DEFAULT_DEVICE_RULES] });
    const created: string[] = [];
    try {
      for (const h of this.hier) {
        const dir = this.dirIn(h, id);
        this.kernel.mkdir(dir);
        created.push(dir);
      }
      this.checkFiles(plan);
      for (const p of plan) this.apply(p);
    } catch (e) {
      for (const dir of created.reverse()) {
        try {
          this.kernel.rmdir(dir);
        } catch {
          // Left for orphan cleanup (list() + destroy()); the first error is the one to report.
        }
      }
      throw this.context(e, `create cgroup of "${id}"`, id);
    }
    const dirs = this.hier.map((h) => this.dirIn(h, id));
    return { procsFiles: dirs.map((d) => `${d}/cgroup.procs`), dirs };
  }

  /**
   * Changes the limits `next` gives (undefined fields stay as they are). All or nothing: the
   * files are read first, and if a write fails the ones already written get their old values
   * back before the failing write's error is thrown.
   */
  update(id: string, next: Resources): void {
    this.checkId(id);
    validateResources(next);
    this.ensureParent();
    this.requireExists(id);
    const plan = this.plan(id, next);
    try {
      this.checkFiles(plan);
    } catch (e) {
      throw this.context(e, `update resources of "${id}"`, id);
    }
    const snapshot = new Map<string, string>();
    const snapshotPath = (p: Planned) => `${this.dirIn(p.h, id)}/${p.h.backend.snapshotFile(p.write)}`;
    for (const p of plan) {
      if (p.write.file === BPF_DEVICE_PROGRAM) continue;
      const path = snapshotPath(p);
      if (!snapshot.has(path)) snapshot.set(path, this.kernel.readFile(path));
    }
    orderMemoryWrites(plan, snapshot);
    // A file that already holds the value is not written again (cpu.cfs_period_us on every
    // cpuLimit change, say): fewer writes, and nothing to restore for it.
    const unchanged = (p: Planned) =>
      p.write.file !== BPF_DEVICE_PROGRAM && p.h.backend.snapshotFile(p.write) === p.write.file && snapshot.get(snapshotPath(p))?.trim() === p.write.value.trim();
    for (let i = plan.length - 1; i >= 0; i--) if (unchanged(plan[i]!)) plan.splice(i, 1);
    let done = 0;
    try {
      for (; done < plan.length; done++) this.apply(plan[done]!);
    } catch (e) {
      const failures: string[] = [];
      const groups = new Set<string>();
      for (let i = done - 1; i >= 0; i--) {
        const p = plan[i]!;
        const { group, writes } = p.h.backend.restore(p.write, snapshot.get(snapshotPath(p)) ?? '');
        if (group !== undefined) {
          if (groups.has(group)) continue;
          groups.add(group);
        }
        for (const w of writes) {
          try {
            this.kernel.cgroupWrite(`${this.dirIn(p.h, id)}/${w.file}`, w.value);
          } catch (re) {
            failures.push(re instanceof Error ? re.message : String(re));
          }
        }
      }
      const err = this.context(e, `update resources of "${id}"`, id);
      if (err instanceof RuntimeError && failures.length > 0) err.message += `; restoring the previous values failed too: ${failures.join('; ')}`;
      throw err;
    }
  }

  /** Usage and limits, one read per file; `only` narrows the reads to those controllers (a cheaper sample). */
  stats(id: string, only?: readonly Controller[]): CgroupStats {
    this.checkId(id);
    this.ensureParent();
    const out: CgroupStats = {};
    try {
      for (const { controller, h } of this.statTargets) {
        if (this.undelegated.has(controller)) continue;
        if (only && !only.includes(controller)) continue;
        h.backend.readStats(controller, this.reader(h, id), out);
      }
    } catch (e) {
      throw this.context(e, `stats of "${id}"`, id);
    }
    return out;
  }

  /**
   * CPU time used and memory in use, one file each: the cheap sample a controller that runs
   * every second for hundreds of containers needs (stats() reads about ten files).
   */
  usage(id: string): { cpuNs: number; memoryBytes: number } {
    this.checkId(id);
    this.ensureParent();
    const out = { cpuNs: 0, memoryBytes: 0 };
    try {
      for (const { controller, h } of this.statTargets) {
        if (this.undelegated.has(controller)) continue;
        const v = h.backend.readUsage(controller, this.reader(h, id));
        if (v === undefined) continue;
        if (controller === 'memory') out.memoryBytes = v;
        else out.cpuNs = v;
      }
    } catch (e) {
      throw this.context(e, `usage of "${id}"`, id);
    }
    return out;
  }

  /** How many processes the kernel's OOM killer has killed in the container. */
  oomKills(id: string): number {
    this.checkId(id);
    const h = this.need('memory', 'count OOM kills');
    try {
      return h.backend.oomKills(this.reader(h, id));
    } catch (e) {
      throw this.context(e, `OOM kills of "${id}"`, id);
    }
  }

  /** The pids of the processes in the container's cgroup. */
  pids(id: string): number[] {
    this.checkId(id);
    const h = this.hierarchyOf('pids') ?? this.hier[0]!;
    let text: string;
    try {
      text = this.kernel.readFile(`${this.dirIn(h, id)}/cgroup.procs`);
    } catch (e) {
      throw this.context(e, `processes of "${id}"`, id);
    }
    return text
      .split('\n')
      .filter((l) => l !== '')
      .map(Number)
      .sort((a, b) => a - b);
  }

  /** Stops every task in the container, resolving once the kernel says all are frozen. */
  async freeze(id: string): Promise<void> {
    this.checkId(id);
    const h = this.need('freezer', 'freeze');
    const dir = this.dirIn(h, id);
    const w = h.backend.freezeWrite(true);
    const reader = this.reader(h, id);
    try {
      if (h.binding.version === 2 && !this.kernel.exists(`${dir}/cgroup.freeze`)) {
        throw new RuntimeError('cgroup.freeze is missing (the v2 freezer needs Linux 5.2+)', { code: 'EUNSUPPORTED', step: 'freezer', path: dir });
      }
      this.kernel.cgroupWrite(`${dir}/${w.file}`, w.value);
      const deadline = Date.now() + (this.options.freezeTimeoutMs ?? 5000);
      for (let attempt = 0; ; attempt++) {
        if (h.backend.isFrozen(reader)) return;
        if (Date.now() >= deadline) break;
        // v1 leaves FREEZING while a task sleeps uninterruptibly; writing FROZEN again makes the
        // kernel retry the tasks it could not freeze (runc does the same).
        if (h.binding.version === 1 && attempt >= 4) this.kernel.cgroupWrite(`${dir}/${w.file}`, w.value);
        await this.sleep(Math.min(1 << attempt, 50));
      }
      const thaw = h.backend.freezeWrite(false);
      this.kernel.cgroupWrite(`${dir}/${thaw.file}`, thaw.value);
      throw new RuntimeError(`freeze: tasks did not all stop within ${this.options.freezeTimeoutMs ?? 5000} ms (thawed again)`, {
        code: 'ETIMEDOUT',
        step: 'freezer',
        path: dir,
      });
    } catch (e) {
      throw this.context(e, `freeze "${id}"`, id);
    }
  }

  /** Lets the container's tasks run again. */
  async thaw(id: string): Promise<void> {
    this.checkId(id);
    const h = this.need('freezer', 'thaw');
    const dir = this.dirIn(h, id);
    const w = h.backend.freezeWrite(false);
    const reader = this.reader(h, id);
    try {
      this.kernel.cgroupWrite(`${dir}/${w.file}`, w.value);
      const deadline = Date.now() + (this.options.freezeTimeoutMs ?? 5000);
      for (let attempt = 0; h.backend.isFrozen(reader); attempt++) {
        if (Date.now() >= deadline) {
          throw new RuntimeError('thaw: the cgroup still reads frozen (is an ancestor frozen?)', { code: 'ETIMEDOUT', step: 'freezer', path: dir });
        }
        await this.sleep(Math.min(1 << attempt, 50));
      }
    } catch (e) {
      throw this.context(e, `thaw "${id}"`, id);
    }
  }

  /**
   * Removes the container's directory in every hierarchy (and any cgroups its processes made
   * below it). Kills nothing: while exiting tasks drain, rmdir fails EBUSY and is retried
   * until destroyTimeoutMs; a cgroup that still holds live processes is an EBUSY error.
   */
  async destroy(id: string): Promise<void> {
    this.checkId(id);
    const deadline = Date.now() + (this.options.destroyTimeoutMs ?? 2000);
    let first: unknown;
    for (const h of [...this.hier].reverse()) {
      try {
        await this.removeTree(this.dirIn(h, id), deadline);
      } catch (e) {
        first ??= e;
      }
    }
    if (first === undefined) return;
    if (!(first instanceof RuntimeError) || first.errno !== 'EBUSY') throw this.context(first, `destroy cgroup of "${id}"`, id);
    let left: number[] = [];
    try {
      left = this.pids(id);
    } catch {
      // The hierarchy read for pids is gone already; the rmdir error says enough.
    }
    const still = left.length > 0 ? ` (processes still in it: ${left.slice(0, 10).join(', ')}${left.length > 10 ? ', …' : ''})` : '';
    throw new RuntimeError(`destroy cgroup of "${id}": ${first.message}${still}`, {
      code: 'EBUSY',
      step: 'cleanup',
      errno: first.errno,
      errnoNumber: first.errnoNumber,
      syscall: first.syscall,
      path: first.path,
      containerId: id,
      cause: first,
    });
  }

  /** The ids with a directory under the parent in any hierarchy (for orphan cleanup at start). */
  list(): string[] {
    const ids = new Set<string>();
    for (const h of this.hier) {
      const parentDir = `${h.binding.mount}/${this.parent}`;
      if (!this.kernel.exists(parentDir)) continue;
      for (const name of this.kernel.readdir(parentDir)) {
        if (ids.has(name) || !ID_RE.test(name)) continue;
        // Interface files sit beside the child cgroups; only a cgroup has a cgroup.procs.
        if (this.kernel.exists(`${parentDir}/${name}/cgroup.procs`)) ids.add(name);
      }
    }
    return [...ids].sort();
  }

  /** Removes the (empty) parent in every hierarchy: for uninstall and tests. */
  removeParent(): void {
    for (const h of this.hier) this.kernel.rmdir(`${h.binding.mount}/${this.parent}`);
    this.parentReady = false;
  }

  // ---- internals ----

  private checkId(id: string): void {
    if (typeof id !== 'string' || !ID_RE.test(id)) {
      throw new RuntimeError(`container id ${JSON.stringify(id)}: expected letters, digits, "_", "." or "-" (at most 255)`, {
        code: 'EINVAL',
        step: 'cgroup',
      });
    }
  }

  private dirIn(h: Hierarchy, id: string): string {
    return `${h.binding.mount}/${this.parent}/${id}`;
  }

  private hierarchyOf(c: Controller): Hierarchy | undefined {
    const b = this.layout.controllers[c];
    return b && this.hier.find((h) => h.binding.version === b.version && h.binding.mount === b.mount);
  }

  private need(c: Controller, what: string): Hierarchy {
    const h = this.hierarchyOf(c);
    if (!h) {
      throw new RuntimeError(`${what}: the ${c} controller is not mounted on this host`, { code: 'EUNSUPPORTED', step: c === 'freezer' ? 'freezer' : 'cgroup' });
    }
    return h;
  }

  private reader(h: Hierarchy, id: string): DirReader {
    const dir = this.dirIn(h, id);
    const kernel = this.kernel;
    return {
      read: (file) => kernel.readFile(`${dir}/${file}`),
      tryRead: (file) => {
        try {
          return kernel.readFile(`${dir}/${file}`);
        } catch (e) {
          if (e instanceof RuntimeError && e.code === 'ENOTFOUND') return undefined;
          throw e;
        }
      },
    };
  }

  private requireExists(id: string): void {
    const dir = this.dirIn(this.hier[0]!, id);
    if (!this.kernel.exists(dir)) {
      throw new RuntimeError(`no cgroup for container "${id}" (${dir})`, { code: 'ENOTFOUND', step: 'cgroup', path: dir, containerId: id });
    }
  }

  /** Creates the parent in every hierarchy (once per driver) and lets each backend prepare it. */
  private ensureParent(): void {
    if (this.parentReady) return;
    const parts = this.parent.split('/');
    for (const h of this.hier) {
      const mount = h.binding.mount;
      const paths = parts.map((_, i) => `${mount}/${parts.slice(0, i + 1).join('/')}`);
      let firstNew = paths.findIndex((p) => !this.kernel.exists(p));
      try {
        if (firstNew >= 0) for (const p of paths.slice(firstNew)) this.kernel.mkdir(p);
        // The configured parent is the runtime's even when an earlier run made it.
        if (firstNew < 0) firstNew = paths.length - 1;
        const owned = paths.slice(firstNew);
        const above = firstNew > 0 ? paths[firstNew - 1]! : mount;
        const writableAncestors = this.options.enableAncestorControllers ? [mount, ...paths.slice(0, firstNew)] : [];
        for (const c of h.backend.prepareParent({ kernel: this.kernel, owned, above, controllers: h.controllers, writableAncestors })) {
          this.undelegated.add(c);
        }
      } catch (e) {
        throw this.context(e, `prepare the parent cgroup ${paths[paths.length - 1]}`, undefined);
      }
    }
    this.parentReady = true;
  }

  /** The writes `r` needs, in mapping-table order, each aimed at the hierarchy holding its controller. */
  private plan(id: string, r: Resources): Planned[] {
    const out: Planned[] = [];
    for (const m of RESOURCE_MAP) {
      if (r[m.resource] === undefined) continue;
      const h = this.hierarchyOf(m.controller);
      if (!h) {
        throw new RuntimeError(`${m.resource}: the ${m.controller} controller is not available on this host`, {
          code: 'EUNSUPPORTED',
          step: 'cgroup',
          containerId: id,
        });
      }
      if (this.undelegated.has(m.controller)) {
        const parentDir = `${h.binding.mount}/${this.parent}`;
        throw new RuntimeError(
          `${m.resource}: the ${m.controller} controller is not delegated to ${parentDir} ` +
            `(the cgroup.subtree_control above it lacks it; enable it there, or set enableAncestorControllers)`,
          { code: 'EUNSUPPORTED', step: 'cgroup', path: parentDir, containerId: id },
        );
      }
      const side = h.binding.version === 1 ? m.v1 : m.v2;
      const dir = this.dirIn(h, id);
      for (const write of side.writes(r)) {
        if (write.file === BPF_DEVICE_PROGRAM && !this.options.devicePrograms) {
          throw new RuntimeError(
            'devices: cgroup v2 enforces device rules with an eBPF program, and no loader was given (CgroupDriverOptions.devicePrograms)',
            { code: 'EUNSUPPORTED', step: 'cgroup', path: dir, containerId: id },
          );
        }
        out.push({ h, write, path: write.file === BPF_DEVICE_PROGRAM ? dir : `${dir}/${write.file}`, mayBeMissing: side.mayBeMissing === true });
      }
    }
    return out;
  }

  /** Files that exist only with some kernel options are checked before anything is written. */
  private checkFiles(plan: Planned[]): void {
    for (const p of plan) {
      if (p.mayBeMissing && !this.kernel.exists(p.path)) {
        throw new RuntimeError(`${p.write.file} does not exist on this kernel (swap accounting off, or no such huge page size?)`, {
          code: 'EUNSUPPORTED',
          step: 'cgroup',
          path: p.path,
        });
      }
    }
  }

  private apply(p: Planned): void {
    if (p.write.file === BPF_DEVICE_PROGRAM) this.options.devicePrograms!.attachDeviceProgram(p.path, p.write.rules ?? []);
    else this.kernel.cgroupWrite(p.path, p.write.value);
  }

  private async removeTree(dir: string, deadline: number): Promise<void> {
    if (!this.kernel.exists(dir)) return;
    // A container with its own cgroup namespace may have made cgroups below its own; rmdir
    // refuses a cgroup with children, so they go first, deepest first.
    for (const name of this.kernel.readdir(dir)) {
      if (this.kernel.exists(`${dir}/${name}/cgroup.procs`)) await this.removeTree(`${dir}/${name}`, deadline);
    }
    for (let attempt = 0; ; attempt++) {
      try {
        this.kernel.rmdir(dir);
        return;
      } catch (e) {
        if (errnoOf(e) !== 'EBUSY' || Date.now() >= deadline) throw e;
        await this.sleep(Math.min(5 << attempt, 100));
      }
    }
  }

  private context(e: unknown, what: string, id: string | undefined): unknown {
    if (!(e instanceof RuntimeError)) return e;
    if (id !== undefined) e.containerId ??= id;
    return e.wrap(what);
  }
}

/**
 * v1 refuses memory.limit_in_bytes above memory.memsw.limit_in_bytes (EINVAL), so when a limit
 * grows past the current memory+swap limit, memsw has to be raised first.
 */
function orderMemoryWrites(plan: Planned[], snapshot: Map<string, string>): void {
  const li = plan.findIndex((p) => p.h.binding.version === 1 && p.write.file === 'memory.limit_in_bytes');
  const si = plan.findIndex((p) => p.h.binding.version === 1 && p.write.file === 'memory.memsw.limit_in_bytes');
  if (li < 0 || si < 0 || si < li) return;
  const newLimit = Number(plan[li]!.write.value);
  const memswPath = plan[si]!.path;
  const current = Number((snapshot.get(memswPath) ?? '').trim());
  if (newLimit === -1 || newLimit > current) {
    const [memsw] = plan.splice(si, 1);
    plan.splice(li, 0, memsw!);
  }
}
