/**
 * CDI device nodes with their own `fileMode`, `uid` or `gid`. A node is bound into the
 * container from the host, and a bind shows the host node's mode and owner; changing those
 * would change the host's node for everyone. So a node whose spec sets any of them is made
 * afresh (mknod, same type, major and minor) in the container's own storage directory, given
 * that mode and owner, and bound instead of the host's. The spec's ids are the container's:
 * inside a user namespace they are mapped to the host ids of the container's range. Access
 * is still the device rule's (the cgroup filter), whatever the mode says.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { RuntimeError } from '../../errors.js';
import type { ProgramResult } from '../../kernel/host.js';

export interface PlanDeviceNode {
  hostPath: string;
  /** The path in the container. */
  path: string;
  /** Set when the spec gives a mode or owner of its own (with the host node's type, major, minor). */
  own?: { type: 'c' | 'b' | 'p'; major: number; minor: number; fileMode?: number | undefined; uid?: number | undefined; gid?: number | undefined } | undefined;
}

/** The container's id range, when it has a user namespace. */
export interface IdRange {
  hostId: number;
  size: number;
}

function hostId(id: number, range: IdRange | undefined, field: string): number {
  if (!range) return id;
  if (id >= range.size) throw new RuntimeError(`devices: ${field}: ${id} is outside the container's ${range.size} ids`, { code: 'EINVAL', step: 'config' });
  return range.hostId + id;
}

/**
 * The nodes to bind: each with an own mode or owner made under `dir` (recreated, so a
 * respawn gets the same), the others as they are. Throws naming the node when mknod fails.
 */
export async function ownDeviceNodes(
  nodes: readonly PlanDeviceNode[],
  dir: string,
  range: IdRange | undefined,
  run: (file: string, args: readonly string[]) => Promise<ProgramResult>,
): Promise<{ hostPath: string; path: string }[]> {
  const out: { hostPath: string; path: string }[] = [];
  for (const [i, n] of nodes.entries()) {
    if (!n.own) {
      out.push({ hostPath: n.hostPath, path: n.path });
      continue;
    }
    const o = n.own;
    fs.mkdirSync(dir, { recursive: true, mode: 0o711 });
    const file = join(dir, `node${i}`);
    fs.rmSync(file, { force: true });
    const host = fs.statSync(n.hostPath);
    const mode = o.fileMode ?? host.mode & 0o7777;
    const args = ['-m', mode.toString(8), file, o.type, ...(o.type === 'p' ? [] : [String(o.major), String(o.minor)])];
    const r = await run('mknod', args);
    if (r.status !== 0) throw new RuntimeError(`devices: device node ${n.path}: mknod ${args.join(' ')} failed: ${r.stderr.trim()}`, { code: 'ESYSCALL', step: 'config', path: file });
    const uid = o.uid !== undefined ? hostId(o.uid, range, `${n.path}.uid`) : host.uid;
    const gid = o.gid !== undefined ? hostId(o.gid, range, `${n.path}.gid`) : host.gid;
    fs.chownSync(file, uid, gid);
    fs.chmodSync(file, mode);
    out.push({ hostPath: file, path: n.path });
  }
  return out;
}
