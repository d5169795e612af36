/**
 * The cgroup driver: one directory per container in every hierarchy, under one parent the
 * runtime owns. Limits are written as the mapping table says, through the backend (v1 or v2)
 * that holds each controller on this host.
 */
import { RuntimeError } from '../errors.js';
import type { Kernel } from '../kernel/kernel.js';
import type { CgroupStats, DirReader } from './backend.js';
import { DEFAULT_DEVICE_RULES } from './devices.js';
import { freezeCgroup, thawCgroup, type FreezerTarget } from './freezer.js';
import { buildHierarchies, dirReader, findHierarchy, inContext, type Hierarchy } from './hierarchy.js';
import type { CgroupLayout, Controller } from './layout.js';
import { BPF_DEVICE_PROGRAM } from './mapping.js';
import { prepareParents } from './parent.js';
import { fillCpuset, placementParent, Placements } from './placement.js';
import { validateResources, type Resources } from './resources.js';
import { removeTree, stillBusyError } from './tree.js';
import { readStats, readUsage, statTargets, type StatTarget } from './usage.js';
import { applyWrite, checkFiles, orderMemoryWrites, planWrites, type DeviceProgramLoader, type PlanContext, type Planned } from './write-plan.js';

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
  /**
   * Where a container made with a path of its own (create's `path`) has its cgroup, for a
   * driver that did not make it: relative to each hierarchy's root; undefined for one under
   * the parent. Asked once per container.
   */
  placement?: (id: string) => string | undefined;
}

export interface CreatedCgroup {
  /** The cgroup.procs file of every hierarchy: the spawner writes the init pid into each. */
  procsFiles: string[];
  /** The container's directory in every hierarchy (the v2 one is last: clone3 CLONE_INTO_CGROUP). */
  dirs: string[];
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/;
const PARENT_RE = /^[A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)*$/;

/**
 * A file that holds one value, the one written: cpu.cfs_quota_us, memory.max, cpu.max; not a
 * file of several lines of which a write changes one (io.max, blkio throttles, devices).
 */
const SCALAR_VALUE_RE = /^(?:-?\d+|max)(?: \d+)?$/;
const cacheable = (p: Planned): boolean => p.write.file !== BPF_DEVICE_PROGRAM && p.h.backend.snapshotFile(p.write) === p.write.file && SCALAR_VALUE_RE.test(p.write.value.trim());

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class CgroupDriver {
  readonly layout: CgroupLayout;
  readonly parent: string;
  private readonly kernel: Kernel;
  private readonly options: CgroupDriverOptions;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly hier: Hierarchy[];
  private readonly statTargets: StatTarget[];
  /** Controllers bound to v2 that the ancestors do not pass down to the parent. */
  private readonly undelegated = new Set<Controller>();
  private parentReady = false;
  private readonly placed: Placements;
  /**
   * What each file of a container's cgroup holds, as this driver last wrote or read it. A
   * live update reads every file it writes (to skip unchanged ones and to restore them if a
   * later write fails); evolving a hundred containers every second, those reads were most
   * of the update's cost. Only updates that ask for it (`cached`: evolution's) trust it, as
   * the holder of the limits while it runs; every other update reads the files again. An
   * entry also goes when an update fails or the cgroup is destroyed. "-1" (unlimited) is not kept: the kernel reads it back as a number
   * that orderMemoryWrites compares. Only files of one value are kept (`cacheable`).
   */
  private readonly known = new Map<string, Map<string, string>>();

  constructor(kernel: Kernel, layout: CgroupLayout, parent = 'stratoswarm', options: CgroupDriverOptions = {}) {
    if (!PARENT_RE.test(parent) || parent.split('/').some((c) => c === '.' || c === '..')) {
      throw new RuntimeError(`cgroup parent ${JSON.stringify(parent)}: expected a relative path like "stratoswarm"`, { code: 'EINVAL', step: 'cgroup' });
    }
    this.kernel = kernel;
    this.layout = layout;
    this.parent = parent;
    this.options = options;
    this.sleep = options.sleep ?? defaultSleep;
    this.placed = new Placements(options.placement);
    this.hier = buildHierarchies(layout);
    if (this.hier.length === 0) {
      throw new RuntimeError('no cgroup hierarchy is mounted (neither cgroup nor cgroup2 in /proc/self/mountinfo)', { code: 'EUNSUPPORTED', step: 'cgroup' });
    }
    this.statTargets = statTargets((c) => this.hierarchyOf(c));
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

  /**
   * Makes the container's cgroup in every hierarchy and writes its limits; undoes it all on
   * failure. `path` (relative to each hierarchy's root) places it there instead of under the
   * parent; the missing directories above it are made and stay.
   */
  create(id: string, r: Resources = {}, opts: { path?: string | undefined } = {}): CreatedCgroup {
    this.checkId(id);
    validateResources(r);
    if (opts.path !== undefined) this.placed.set(id, opts.path);
    try {
      return this.make(id, r);
    } catch (e) {
      if (opts.path !== undefined) this.placed.forget(id);
      throw e;
    }
  }

  private make(id: string, r: Resources): CreatedCgroup {
    this.ensureParentOf(id);
    const existing = this.hier.map((h) => this.dirIn(h, id)).filter((d) => this.kernel.exists(d));
    if (existing.length > 0) {
      throw new RuntimeError(`cgroup of container "${id}" exists already (${existing[0]}); destroy it first`, {
        code: 'EEXIST',
        step: 'cgroup',
        path: existing[0],
        containerId: id,
      });
    }
    const plan = planWrites(this.planContext(id), id, { ...r, devices: r.devices ?? [...DEFAULT_DEVICE_RULES] });
    const created: string[] = [];
    try {
      for (const h of this.hier) {
        const dir = this.dirIn(h, id);
        this.kernel.mkdir(dir);
        created.push(dir);
        if (this.placed.path(id) !== undefined) fillCpuset(this.kernel, h, dir);
      }
      checkFiles(this.kernel, plan);
      for (const p of plan) this.apply(p);
    } catch (e) {
      for (const dir of created.reverse()) {
        try {
          this.kernel.rmdir(dir);
        } catch {
          // Left for orphan cleanup (list() + destroy()); the first error is the one to report.
        }
      }
      throw inContext(e, `create cgroup of "${id}"`, id);
    }
    const dirs = this.hier.map((h) => this.dirIn(h, id));
    return { procsFiles: dirs.map((d) => `${d}/cgroup.procs`), dirs };
  }

  /**
   * Changes the limits `next` gives (undefined fields stay as they are). All or nothing: the
   * files are read first, and if a write fails the ones already written get their old values
   * back before the failing write's error is thrown.
   */
  update(id: string, next: Resources, opts: { cached?: boolean } = {}): void {
    this.checkId(id);
    validateResources(next);
    this.ensureParentOf(id);
    // Only a cached update (evolution's, many a second) trusts what was last written; any
    // other reads the files again, so a limit another process changed is seen, and the
    // cache starts over from what the files hold.
    if (!opts.cached) this.known.delete(id);
    let known = this.known.get(id);
    if (!known) {
      this.requireExists(id);
      known = new Map();
      this.known.set(id, known);
    }
    const plan = planWrites(this.planContext(id), id, next);
    try {
      checkFiles(this.kernel, plan);
    } catch (e) {
      throw inContext(e, `update resources of "${id}"`, id);
    }
    const snapshot = new Map<string, string>();
    const snapshotPath = (p: Planned) => `${this.dirIn(p.h, id)}/${p.h.backend.snapshotFile(p.write)}`;
    for (const p of plan) {
      if (p.write.file === BPF_DEVICE_PROGRAM) continue;
      const path = snapshotPath(p);
      if (snapshot.has(path)) continue;
      if (!cacheable(p)) {
        snapshot.set(path, this.kernel.readFile(path));
        continue;
      }
      let value = known.get(path);
      if (value === undefined) {
        value = this.kernel.readFile(path).trim();
        known.set(path, value);
      }
      snapshot.set(path, value);
    }
    orderMemoryWrites(plan, snapshot);
    // A file that already holds the value is not written again (cpu.cfs_period_us on every
    // cpuLimit change, say): fewer writes, and nothing to restore for it.
    const unchanged = (p: Planned) =>
      p.write.file !== BPF_DEVICE_PROGRAM && p.h.backend.snapshotFile(p.write) === p.write.file && snapshot.get(snapshotPath(p))?.trim() === p.write.value.trim();
    for (let i = plan.length - 1; i >= 0; i--) if (unchanged(plan[i]!)) plan.splice(i, 1);
    let done = 0;
    try {
      for (; done < plan.length; done++) {
        const p = plan[done]!;
        this.apply(p);
        if (!cacheable(p)) continue;
        const value = p.write.value.trim();
        if (value === '-1') known.delete(snapshotPath(p));
        else known.set(snapshotPath(p), value);
      }
    } catch (e) {
      this.known.delete(id);
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
      const err = inContext(e, `update resources of "${id}"`, id);
      if (err instanceof RuntimeError && failures.length > 0) err.message += `; restoring the previous values failed too: ${failures.join('; ')}`;
      throw err;
    }
  }

  /** Usage and limits, one read per file; `only` narrows the reads to those controllers (a cheaper sample). */
  stats(id: string, only?: readonly Controller[]): CgroupStats {
    this.checkId(id);
    const undelegated = this.ensureParentOf(id);
    try {
      return readStats(this.statTargets, undelegated, (h) => this.reader(h, id), only);
    } catch (e) {
      throw inContext(e, `stats of "${id}"`, id);
    }
  }

  /**
   * CPU time used and memory in use, one file each: the cheap sample a controller that runs
   * every second for hundreds of containers needs (stats() reads about ten files).
   */
  usage(id: string): { cpuNs: number; memoryBytes: number } {
    this.checkId(id);
    const undelegated = this.ensureParentOf(id);
    try {
      return readUsage(this.statTargets, undelegated, (h) => this.reader(h, id));
    } catch (e) {
      throw inContext(e, `usage of "${id}"`, id);
    }
  }

  /** How many processes the kernel's OOM killer has killed in the container. */
  oomKills(id: string): number {
    this.checkId(id);
    const h = this.need('memory', 'count OOM kills');
    try {
      return h.backend.oomKills(this.reader(h, id));
    } catch (e) {
      throw inContext(e, `OOM kills of "${id}"`, id);
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
      throw inContext(e, `processes of "${id}"`, id);
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
    const target = this.freezerTarget(this.need('freezer', 'freeze'), id);
    try {
      await freezeCgroup(target);
    } catch (e) {
      throw inContext(e, `freeze "${id}"`, id);
    }
  }

  /** Lets the container's tasks run again. */
  async thaw(id: string): Promise<void> {
    this.checkId(id);
    const target = this.freezerTarget(this.need('freezer', 'thaw'), id);
    try {
      await thawCgroup(target);
    } catch (e) {
      throw inContext(e, `thaw "${id}"`, id);
    }
  }

  /**
   * Removes the container's directory in every hierarchy (and any cgroups its processes made
   * below it). Kills nothing: while exiting tasks drain, rmdir fails EBUSY and is retried
   * until destroyTimeoutMs; a cgroup that still holds live processes is an EBUSY error.
   */
  async destroy(id: string): Promise<void> {
    this.checkId(id);
    this.known.delete(id);
    const deadline = Date.now() + (this.options.destroyTimeoutMs ?? 2000);
    let first: unknown;
    for (const h of [...this.hier].reverse()) {
      try {
        await removeTree(this.kernel, this.dirIn(h, id), deadline, this.sleep);
      } catch (e) {
        first ??= e;
      }
    }
    if (first === undefined) return this.placed.forget(id);
    if (!(first instanceof RuntimeError) || first.errno !== 'EBUSY') throw inContext(first, `destroy cgroup of "${id}"`, id);
    let left: number[] = [];
    try {
      left = this.pids(id);
    } catch {
      // The hierarchy read for pids is gone already; the rmdir error says enough.
    }
    throw stillBusyError(id, first, left);
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
    const path = this.placed.path(id);
    return path === undefined ? `${h.binding.mount}/${this.parent}/${id}` : `${h.binding.mount}/${path}`;
  }

  private hierarchyOf(c: Controller): Hierarchy | undefined {
    return findHierarchy(this.hier, this.layout, c);
  }

  private need(c: Controller, what: string): Hierarchy {
    const h = this.hierarchyOf(c);
    if (!h) {
      throw new RuntimeError(`${what}: the ${c} controller is not mounted on this host`, { code: 'EUNSUPPORTED', step: c === 'freezer' ? 'freezer' : 'cgroup' });
    }
    return h;
  }

  private reader(h: Hierarchy, id: string): DirReader {
    return dirReader(this.kernel, this.dirIn(h, id));
  }

  private freezerTarget(h: Hierarchy, id: string): FreezerTarget {
    return { kernel: this.kernel, h, dir: this.dirIn(h, id), reader: this.reader(h, id), timeoutMs: this.options.freezeTimeoutMs ?? 5000, sleep: this.sleep };
  }

  private requireExists(id: string): void {
    const dir = this.dirIn(this.hier[0]!, id);
    if (!this.kernel.exists(dir)) {
      throw new RuntimeError(`no cgroup for container "${id}" (${dir})`, { code: 'ENOTFOUND', step: 'cgroup', path: dir, containerId: id });
    }
  }

  /**
   * Creates the container's parent in every hierarchy (once per driver and parent) and lets
   * each backend prepare it; returns the controllers its ancestors do not pass down.
   */
  private ensureParentOf(id: string): ReadonlySet<Controller> {
    const path = this.placed.path(id);
    if (path !== undefined) return this.placed.prepare(this.kernel, this.hier, path);
    if (!this.parentReady) prepareParents(this.kernel, this.hier, this.parent, this.options.enableAncestorControllers === true, this.undelegated);
    this.parentReady = true;
    return this.undelegated;
  }

  private planContext(id: string): PlanContext {
    const path = this.placed.path(id);
    const parent = path === undefined ? this.parent : placementParent(path);
    return {
      hierarchyOf: (c: Controller) => this.hierarchyOf(c),
      undelegated: this.ensureParentOf(id),
      parentDir: (h: Hierarchy) => (parent === '' ? h.binding.mount : `${h.binding.mount}/${parent}`),
      dirIn: (h: Hierarchy, id: string) => this.dirIn(h, id),
      devicePrograms: this.options.devicePrograms,
      unifiedHierarchy: this.hier.find((h) => h.binding.version === 2),
    };
  }

  private apply(p: Planned): void {
    applyWrite(this.kernel, this.options.devicePrograms, p);
  }
}
