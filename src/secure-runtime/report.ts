/**
 * securityReport: what confinement a running process actually has, read back from /proc,
 * so tests and operators check the kernel's view rather than the configuration's.
 */
import { readFile, readdir, readlink } from 'node:fs/promises';
import { fromNodeError } from '../errors.js';
import { capabilityNames } from './capabilities.js';

export interface CapabilityReport {
  mask: bigint;
  names: string[];
}

export interface IdMapEntry {
  inside: number;
  outside: number;
  count: number;
}

export interface NamespaceReport {
  type: string;
  /** The namespace's inode (from the `type:[inode]` link); undefined if unreadable. */
  inode: number | undefined;
  hostInode: number | undefined;
  /** True when the process is in the same namespace as the caller (the host side). */
  sharedWithHost: boolean | undefined;
}

export interface MountReport {
  mountPoint: string;
  fsType: string;
  source: string;
  /** Per-mount options (ro, nosuid, ...). */
  options: string[];
  superOptions: string[];
  readOnly: boolean;
}

export type SeccompMode = 'disabled' | 'strict' | 'filter';

export interface SecurityReport {
  pid: number;
  uids: { real: number; effective: number; saved: number; fs: number } | undefined;
  gids: { real: number; effective: number; saved: number; fs: number } | undefined;
  groups: number[];
  capabilities: {
    inheritable: CapabilityReport;
    permitted: CapabilityReport;
    effective: CapabilityReport;
    bounding: CapabilityReport;
    ambient: CapabilityReport;
  };
  noNewPrivileges: boolean;
  seccomp: { mode: SeccompMode; filters: number | undefined };
  uidMap: IdMapEntry[];
  gidMap: IdMapEntry[];
  /** True when uid_map is anything but the initial namespace's identity map. */
  inUserNamespace: boolean;
  namespaces: NamespaceReport[];
  mounts: MountReport[];
  /** Mount points mounted read-only (per-mount or superblock). */
  readOnlyMounts: string[];
}

function decodeCaps(hex: string | undefined): CapabilityReport {
  const mask = hex ? BigInt(`0x${hex.trim()}`) : 0n;
  return { mask, names: capabilityNames(mask) };
}

/** "Key:\tvalue" lines of /proc/<pid>/status. */
export function parseStatus(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return out;
}

function ids(v: string | undefined): SecurityReport['uids'] {
  if (!v) return undefined;
  const [real, effective, saved, fs] = v.split(/\s+/).map(Number);
  return { real: real!, effective: effective!, saved: saved!, fs: fs! };
}

export function parseIdMap(text: string): IdMapEntry[] {
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length === 3)
    .map(([a, b, c]) => ({ inside: Number(a), outside: Number(b), count: Number(c) }));
}

/** The escapes mountinfo uses for space, tab, newline and backslash. */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function parseMountinfo(text: string): MountReport[] {
  const out: MountReport[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    if (left.length < 6 || right.length < 3) continue;
    const options = left[5]!.split(',');
    const superOptions = right[2]!.split(',');
    out.push({
      mountPoint: unescapeMountField(left[4]!),
      fsType: right[0]!,
      source: unescapeMountField(right[1]!),
      options,
      superOptions,
      readOnly: options.includes('ro') || superOptions.includes('ro'),
    });
  }
  return out;
}

async function nsInode(link: string): Promise<number | undefined> {
  try {
    const m = /\[(\d+)\]/.exec(await readlink(link));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'EACCES') return undefined;
    throw fromNodeError(e, 'state', `read \`${path}\``);
  }
}

/** Reads the confinement of process `pid` (default: this process) from /proc. */
export async function securityReport(pid: number = process.pid): Promise<SecurityReport> {
  const base = `/proc/${pid}`;
  let statusText: string;
  try {
    statusText = await readFile(`${base}/status`, 'utf8');
  } catch (e) {
    throw fromNodeError(e, 'state', `security report of pid ${pid}`);
  }
  const status = parseStatus(statusText);
  const uidMapText = (await readOptional(`${base}/uid_map`)) ?? '';
  const gidMapText = (await readOptional(`${base}/gid_map`)) ?? '';
  const uidMap = parseIdMap(uidMapText);
  const gidMap = parseIdMap(gidMapText);
  const seccompMode = Number(status.get('Seccomp') ?? 0);
  const filters = status.get('Seccomp_filters');

  let nsNames: string[] = [];
  try {
    nsNames = (await readdir(`${base}/ns`)).sort();
  } catch {
    nsNames = [];
  }
  const namespaces: NamespaceReport[] = [];
  for (const type of nsNames) {
    const inode = await nsInode(`${base}/ns/${type}`);
    const hostInode = await nsInode(`/proc/self/ns/${type}`);
    namespaces.push({
      type,
      inode,
      hostInode,
      sharedWithHost: inode === undefined || hostInode === undefined ? undefined : inode === hostInode,
    });
  }

  const mounts = parseMountinfo((await readOptional(`${base}/mountinfo`)) ?? '');
  // The initial user namespace maps all 2^32-1 ids onto themselves.
  const identity = uidMap.length === 1 && uidMap[0]!.inside === 0 && uidMap[0]!.outside === 0 && uidMap[0]!.count === 4294967295;

  return {
    pid,
    uids: ids(status.get('Uid')),
    gids: ids(status.get('Gid')),
    groups: (status.get('Groups') ?? '').split(/\s+/).filter(Boolean).map(Number),
    capabilities: {
      inheritable: decodeCaps(status.get('CapInh')),
      permitted: decodeCaps(status.get('CapPrm')),
      effective: decodeCaps(status.get('CapEff')),
      bounding: decodeCaps(status.get('CapBnd')),
      ambient: decodeCaps(status.get('CapAmb')),
    },
    noNewPrivileges: status.get('NoNewPrivs') === '1',
    seccomp: {
      mode: seccompMode === 2 ? 'filter' : seccompMode === 1 ? 'strict' : 'disabled',
      filters: filters === undefined ? undefined : Number(filters),
    },
    uidMap,
    gidMap,
    inUserNamespace: uidMap.length > 0 && !identity,
    namespaces,
    mounts,
    readOnlyMounts: mounts.filter((m) => m.readOnly).map((m) => m.mountPoint),
  };
}
