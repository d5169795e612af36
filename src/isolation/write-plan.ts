/** Planning the cgroup writes a Resources needs, checking them, and making them. */
import { RuntimeError } from '../errors.js';
import type { Kernel } from '../kernel/kernel.js';
import type { Hierarchy } from './hierarchy.js';
import type { Controller } from './layout.js';
import { BPF_DEVICE_PROGRAM, RESOURCE_MAP, type Write } from './mapping.js';
import type { DeviceRule, Resources } from './resources.js';

/** Attaches a BPF_PROG_TYPE_CGROUP_DEVICE program to a v2 cgroup (the addon's attachDeviceProgram). */
export interface DeviceProgramLoader {
  /** Enforces `rules` on the cgroup directory, replacing the program attached there before. */
  attachDeviceProgram(cgroupDir: string, rules: readonly DeviceRule[]): void;
}

export interface Planned {
  h: Hierarchy;
  write: Write;
  /** The file's full path; for the device program, the cgroup directory. */
  path: string;
  mayBeMissing: boolean;
  /** Absent on this kernel: dropped from the plan, not an error. */
  skipIfMissing?: boolean;
  /** The setting the write is for, and what its mapping says of a missing file or a failed write. */
  resource: keyof Resources;
  missingBecause?: string;
  writeHint?: (errno: string) => string | undefined;
}

export interface PlanContext {
  hierarchyOf(c: Controller): Hierarchy | undefined;
  undelegated: ReadonlySet<Controller>;
  /** The runtime's parent directory in a hierarchy. */
  parentDir(h: Hierarchy): string;
  /** The container's directory in a hierarchy. */
  dirIn(h: Hierarchy, id: string): string;
  devicePrograms: DeviceProgramLoader | undefined;
  /** The unified (v2) hierarchy, where unified's cgroup.* keys go. */
  unifiedHierarchy: Hierarchy | undefined;
}

/** The writes `r` needs, in mapping-table order, each aimed at the hierarchy holding its controller. */
export function planWrites(ctx: PlanContext, id: string, r: Resources): Planned[] {
  const out: Planned[] = [];
  for (const m of RESOURCE_MAP) {
    // unified's files go in before the device rules, which must come last.
    if (m.resource === 'devices' && r.unified !== undefined) out.push(...planUnified(ctx, id, r.unified));
    if (r[m.resource] === undefined) continue;
    const h = ctx.hierarchyOf(m.controller);
    if (!h) {
      throw new RuntimeError(`${m.resource}: the ${m.controller} controller is not available on this host`, {
        code: 'EUNSUPPORTED',
        step: 'cgroup',
        containerId: id,
      });
    }
    if (ctx.undelegated.has(m.controller)) {
      const parentDir = ctx.parentDir(h);
      throw new RuntimeError(
        `${m.resource}: the ${m.controller} controller is not delegated to ${parentDir} ` +
          `(the cgroup.subtree_control above it lacks it; enable it there, or set enableAncestorControllers)`,
        { code: 'EUNSUPPORTED', step: 'cgroup', path: parentDir, containerId: id },
      );
    }
    const side = h.binding.version === 1 ? m.v1 : m.v2;
    const dir = ctx.dirIn(h, id);
    const why = side.unsupported?.(r);
    if (why !== undefined) throw new RuntimeError(`${m.resource}: ${why}`, { code: 'EUNSUPPORTED', step: 'cgroup', path: dir, containerId: id });
    for (const write of side.writes(r)) {
      if (write.file === BPF_DEVICE_PROGRAM && !ctx.devicePrograms) {
        throw new RuntimeError(
          'devices: cgroup v2 enforces device rules with an eBPF program, and no loader was given (CgroupDriverOptions.devicePrograms)',
          { code: 'EUNSUPPORTED', step: 'cgroup', path: dir, containerId: id },
        );
      }
      out.push({
        h,
        write,
        path: write.file === BPF_DEVICE_PROGRAM ? dir : `${dir}/${write.file}`,
        mayBeMissing: side.mayBeMissing === true,
        ...(side.skipIfMissing ? { skipIfMissing: true } : {}),
        resource: m.resource,
        ...(side.missingBecause ? { missingBecause: side.missingBecause } : {}),
        ...(side.writeHint ? { writeHint: side.writeHint } : {}),
      });
    }
  }
  return out;
}

/** The v1 name of each v2 controller a unified key can start with. */
const CONTROLLER_OF: Record<string, Controller> = { cpu: 'cpu', cpuset: 'cpuset', memory: 'memory', pids: 'pids', io: 'blkio', hugetlb: 'hugetlb' };

/**
 * unified's writes: each key is a file of the container's v2 directory, its controller the
 * part before the first dot (cgroup.* is the core's). A controller held by v1 on this host,
 * or one the runtime does not drive, is refused by name: the file is not there.
 */
function planUnified(ctx: PlanContext, id: string, unified: Record<string, string>): Planned[] {
  const out: Planned[] = [];
  for (const [key, value] of Object.entries(unified)) {
    const at = `unified[${JSON.stringify(key)}]`;
    const prefix = key.slice(0, key.indexOf('.'));
    const fail = (why: string) => new RuntimeError(`${at}: ${why}`, { code: 'EUNSUPPORTED', step: 'cgroup', containerId: id });
    let h: Hierarchy | undefined;
    if (prefix === 'cgroup') {
      h = ctx.unifiedHierarchy;
      if (!h) throw fail('no cgroup v2 hierarchy is mounted on this host');
    } else {
      const c = CONTROLLER_OF[prefix];
      if (!c) throw fail(`the runtime does not drive a "${prefix}" controller (it drives ${Object.keys(CONTROLLER_OF).join(', ')} and the cgroup core's files)`);
      h = ctx.hierarchyOf(c);
      if (!h) throw fail(`the ${prefix} controller is not available on this host`);
      if (h.binding.version !== 2) throw fail(`the ${prefix} controller is on cgroup v1 on this host (${h.binding.mount}); unified writes cgroup v2 files`);
      if (ctx.undelegated.has(c)) throw fail(`the ${prefix} controller is not delegated to ${ctx.parentDir(h)}`);
    }
    const dir = ctx.dirIn(h, id);
    out.push({
      h,
      write: { file: key, value },
      path: `${dir}/${key}`,
      mayBeMissing: true,
      resource: 'unified',
      missingBecause: `no such file in the container's cgroup v2 directory: misspelt, or not in this kernel`,
    });
  }
  return out;
}

/**
 * Files that exist only with some kernel options are checked before anything is written;
 * the writes whose file may be absent without harm (skipIfMissing) are dropped when it is.
 */
export function checkFiles(kernel: Kernel, plan: Planned[]): void {
  for (let i = plan.length - 1; i >= 0; i--) if (plan[i]!.skipIfMissing && !kernel.exists(plan[i]!.path)) plan.splice(i, 1);
  for (const p of plan) {
    if (p.mayBeMissing && !kernel.exists(p.path)) {
      const what = p.resource === 'unified' ? `unified[${JSON.stringify(p.write.file)}]` : p.resource;
      const why = p.missingBecause ? `${what}: ${p.write.file} does not exist on this kernel (${p.missingBecause})` : `${p.write.file} does not exist on this kernel (swap accounting off, or no such huge page size?)`;
      throw new RuntimeError(why, {
        code: 'EUNSUPPORTED',
        step: 'cgroup',
        path: p.path,
      });
    }
  }
}

export function applyWrite(kernel: Kernel, devicePrograms: DeviceProgramLoader | undefined, p: Planned): void {
  if (p.write.file === BPF_DEVICE_PROGRAM) return devicePrograms!.attachDeviceProgram(p.path, p.write.rules ?? []);
  try {
    kernel.cgroupWrite(p.path, p.write.value);
  } catch (e) {
    const hint = e instanceof RuntimeError && e.errno !== undefined ? p.writeHint?.(e.errno) : undefined;
    if (hint !== undefined) (e as RuntimeError).wrap(p.resource).message += `: ${hint}`;
    throw e;
  }
}

/**
 * v1 refuses memory.limit_in_bytes above memory.memsw.limit_in_bytes (EINVAL), so when a limit
 * grows past the current memory+swap limit, memsw has to be raised first.
 */
export function orderMemoryWrites(plan: Planned[], snapshot: Map<string, string>): void {
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
