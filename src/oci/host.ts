/** Host facts the OCI translation needs, read from the kernel's own files. */
import * as fs from 'node:fs';

/** A cgroup hierarchy the host mounts under /sys/fs/cgroup. */
export interface CgroupHierarchy {
  /** The directory under /sys/fs/cgroup ("memory", "cpu,cpuacct", "unified"). */
  name: string;
  type: 'cgroup' | 'cgroup2';
  /** What mounting it again needs: its controllers, or its name ("none,name=systemd"). */
  data: string;
}

/** What the OCI translation reads of the host (config.ts is pure but for these). */
export interface HostFacts {
  /** The cgroup hierarchies the host mounts under /sys/fs/cgroup. */
  cgroupHierarchies(): CgroupHierarchy[];
  /** Whether a host device node exists (linux.devices are bound from the host). */
  deviceExists(path: string): boolean;
  /** What a bind mount's source is, undefined when it does not exist. */
  pathKind(path: string): 'directory' | 'file' | undefined;
  /** A process's uid_map or gid_map, undefined when it cannot be read (a joined user namespace's maps). */
  idMap?(pid: number, which: 'uid_map' | 'gid_map'): string | undefined;
  /** The capabilities this runtime holds in its bounding set, all it can grant; undefined: not checked. */
  boundingSet?(): bigint;
}

let bounding: bigint | undefined;

/**
 * CapBnd of /proc/self/status: the spawner this process starts (or was started with) has the
 * same. Read once: a process's bounding set never grows, and this one never drops from it.
 */
export function ownBoundingSet(): bigint {
  if (bounding === undefined) {
    const m = /^CapBnd:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    bounding = m ? BigInt(`0x${m[1]}`) : ~0n;
  }
  return bounding;
}

const GENERIC_OPTIONS = new Set(['rw', 'ro', 'relatime', 'noatime', 'nosuid', 'nodev', 'noexec', 'seclabel']);

export function cgroupHierarchies(mounts = '/proc/self/mounts'): CgroupHierarchy[] {
  const out: CgroupHierarchy[] = [];
  for (const line of fs.readFileSync(mounts, 'utf8').split('\n')) {
    const [, dir, type, options] = line.split(' ');
    if (!dir?.startsWith('/sys/fs/cgroup/') || (type !== 'cgroup' && type !== 'cgroup2')) continue;
    const name = dir.slice('/sys/fs/cgroup/'.length);
    if (!name || name.includes('/') || out.some((h) => h.name === name)) continue;
    const own = (options ?? '').split(',').filter((o) => !GENERIC_OPTIONS.has(o));
    const data = type === 'cgroup2' ? '' : own.some((o) => o.startsWith('name=')) ? ['none', ...own].join(',') : own.join(',');
    out.push({ name, type, data });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

export function pathKind(path: string): 'directory' | 'file' | undefined {
  try {
    return fs.statSync(path).isDirectory() ? 'directory' : 'file';
  } catch {
    return undefined;
  }
}

export function idMap(pid: number, which: 'uid_map' | 'gid_map'): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/${which}`, 'utf8');
  } catch {
    return undefined;
  }
}
