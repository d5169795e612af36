/**
 * Which cgroup hierarchy holds which controller, read from /proc/self/mountinfo.
 *
 * A controller can be bound to exactly one hierarchy (kernel rule), so the choice is made per
 * controller: a controller some v1 hierarchy holds is driven through v1, one only the unified
 * (v2) tree can hold is driven through v2. That one rule covers pure v1, pure v2 and hybrid
 * hosts (systemd's "hybrid" mode, or this project's CI VM where v1 holds everything but
 * hugetlb).
 */
import type { Kernel } from '../kernel/kernel.js';

/** The controllers the driver uses, by their v1 names. */
export const CONTROLLERS = ['cpu', 'cpuacct', 'cpuset', 'memory', 'pids', 'blkio', 'devices', 'freezer', 'hugetlb'] as const;
export type Controller = (typeof CONTROLLERS)[number];

/**
 * The v2 name of each controller; null where v2 has no controller of that name but the cgroup
 * core does the job (cgroup.freeze since 5.2; device access through an eBPF program).
 * cpuacct has no v2 controller: v2's cpu.stat carries usage for every cgroup.
 */
export const V2_NAME: Record<Controller, string | null> = {
  cpu: 'cpu',
  cpuacct: 'cpu',
  cpuset: 'cpuset',
  memory: 'memory',
  pids: 'pids',
  blkio: 'io',
  devices: null,
  freezer: null,
  hugetlb: 'hugetlb',
};

/** Controllers that exist on v2 at all (Documentation/admin-guide/cgroup-v2.rst). */
const V2_CONTROLLERS = ['cpu', 'cpuset', 'io', 'memory', 'pids', 'hugetlb', 'rdma', 'misc'];
/** v1 controllers that, once mounted on v1, keep the named v2 controller off the unified tree. */
const V1_HOLDS_V2: Record<string, string> = { cpu: 'cpu', cpuset: 'cpuset', blkio: 'io', memory: 'memory', pids: 'pids', hugetlb: 'hugetlb', rdma: 'rdma', misc: 'misc' };

export interface Binding {
  version: 1 | 2;
  /** The hierarchy's mount point; the runtime's parent cgroup is created right below it. */
  mount: string;
}

export interface CgroupLayout {
  /** v1 controller → mount point of the hierarchy holding it (co-mounted controllers share one). */
  v1: Partial<Record<Controller, string>>;
  /** The unified hierarchy, if mounted, and the controllers its root offers. */
  v2: { mount: string; controllers: string[] } | undefined;
  /** The driver's choice for each controller; a controller missing here is not available. */
  controllers: Partial<Record<Controller, Binding>>;
}

export interface MountEntry {
  id: number;
  parentId: number;
  /** "major:minor" of st_dev for files on this mount. */
  device: string;
  root: string;
  mountPoint: string;
  options: string[];
  fsType: string;
  source: string;
  superOptions: string[];
}

/** mountinfo escapes space, tab, newline and backslash as \ooo octal (fs/proc_namespace.c). */
function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Parses /proc/<pid>/mountinfo (proc(5)); malformed lines are skipped. */
export function parseMountinfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (f.length < 10 || sep < 0 || sep + 3 > f.length) continue;
    entries.push({
      id: Number(f[0]),
      parentId: Number(f[1]),
      device: f[2]!,
      root: unescapeOctal(f[3]!),
      mountPoint: unescapeOctal(f[4]!),
      options: f[5]!.split(','),
      fsType: f[sep + 1]!,
      source: unescapeOctal(f[sep + 2]!),
      superOptions: (f[sep + 3] ?? '').split(','),
    });
  }
  return entries;
}

export interface DetectOptions {
  /**
   * The unified root's cgroup.controllers, when known. Without it, v2 is assumed to offer
   * every v2 controller no v1 hierarchy holds, which is what the kernel does unless a
   * controller is compiled out.
   */
  v2Controllers?: string[];
}

/** Works out which hierarchy drives each controller from the text of /proc/self/mountinfo. */
export function detectCgroups(mountinfo: string, options: DetectOptions = {}): CgroupLayout {
  const v1: Partial<Record<Controller, string>> = {};
  let v2Mount: string | undefined;
  const v1Held = new Set<string>();
  for (const m of parseMountinfo(mountinfo)) {
    if (m.fsType === 'cgroup') {
      for (const opt of m.superOptions) {
        v1Held.add(opt);
        // A hierarchy bind-mounted twice shows up twice; the first (usually /sys/fs/cgroup/x) wins.
        if ((CONTROLLERS as readonly string[]).includes(opt) && v1[opt as Controller] === undefined) {
          v1[opt as Controller] = m.mountPoint;
        }
      }
    } else if (m.fsType === 'cgroup2' && v2Mount === undefined) {
      v2Mount = m.mountPoint;
    }
  }
  let v2: CgroupLayout['v2'];
  if (v2Mount !== undefined) {
    const held = new Set([...v1Held].map((c) => V1_HOLDS_V2[c]).filter((c): c is string => c !== undefined));
    const controllers = options.v2Controllers ?? V2_CONTROLLERS.filter((c) => !held.has(c));
    v2 = { mount: v2Mount, controllers: [...controllers] };
  }
  const controllers: Partial<Record<Controller, Binding>> = {};
  for (const c of CONTROLLERS) {
    const mount = v1[c];
    if (mount !== undefined) {
      controllers[c] = { version: 1, mount };
      continue;
    }
    if (!v2) continue;
    const name = V2_NAME[c];
    // freezer and devices live in the v2 core, available whenever their v1 controller is not
    // mounted (a v1-mounted one was taken care of above).
    if (name === null || v2.controllers.includes(name)) controllers[c] = { version: 2, mount: v2.mount };
  }
  return { v1, v2, controllers };
}

/** Reads this process's mountinfo (and the unified root's controllers) through the kernel seam. */
export function readCgroupLayout(kernel: Kernel, mountinfoPath = '/proc/self/mountinfo'): CgroupLayout {
  const text = kernel.readFile(mountinfoPath);
  const probe = detectCgroups(text);
  if (!probe.v2) return probe;
  let v2Controllers: string[] | undefined;
  try {
    v2Controllers = kernel.readFile(`${probe.v2.mount}/cgroup.controllers`).trim().split(/\s+/).filter(Boolean);
  } catch {
    v2Controllers = undefined; // unreadable root: keep the inference from mountinfo
  }
  return v2Controllers === undefined ? probe : detectCgroups(text, { v2Controllers });
}

/** The distinct hierarchies a container gets a directory in: every bound v1 mount, then v2. */
export function hierarchies(layout: CgroupLayout): Binding[] {
  const seen = new Set<string>();
  const out: Binding[] = [];
  for (const c of CONTROLLERS) {
    const b = layout.controllers[c];
    if (!b || b.version !== 1 || seen.has(b.mount)) continue;
    seen.add(b.mount);
    out.push(b);
  }
  // The unified tree also tracks processes on hybrid hosts (systemd relies on it), so a
  // container gets a directory there even when v2 holds none of its controllers.
  if (layout.v2) out.push({ version: 2, mount: layout.v2.mount });
  return out;
}
