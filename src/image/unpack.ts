/**
 * Unpacks one layer (a tar stream, already decompressed) into a directory, safely: every
 * member is written through native/unpack.cc, which resolves its parent beneath the layer
 * root without following symlinks, so no absolute name, `..`, planted symlink or hard link
 * can reach outside the layer. What the archive says is neutralised as follows:
 *
 * - names: a leading `/` is dropped and `..` stops at the root (`../../etc/x` is `etc/x`),
 *   as Docker does; a member whose parent is a symlink it planted is refused;
 * - hard links: the target is a path in this layer, resolved the same way, and never followed;
 * - device nodes are not created (a container gets its devices from the runtime), and are
 *   counted in `skipped`; FIFOs are;
 * - whiteouts (`.wh.NAME`) become overlayfs whiteouts (character device 0:0) and opaque
 *   markers (`.wh..wh..opq`) the `trusted.overlay.opaque` xattr;
 * - xattrs in `trusted.*` (overlayfs's own) and `security.selinux` are dropped; `user.*` and
 *   `security.capability` are kept;
 * - owners, modes (setuid and setgid included) and mtimes are kept. Layers live under a
 *   directory only root can enter, so a setuid file is out of host users' reach.
 */
import * as fs from 'node:fs';
import { promisify } from 'node:util';
import { RuntimeError } from '../errors.js';
import { loadNative, type NativeAddon, type UnpackMeta } from '../kernel/native.js';
import { readTar, type TarEntry } from './tar.js';

const write = promisify(fs.write);

export interface UnpackResult {
  entries: number;
  /** Members that were not created, with why (device nodes). */
  skipped: { path: string; why: string }[];
}

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';

/** The member's path inside the layer: relative, without `.` or `..`; '' is the root. */
export function layerPath(name: string): string {
  const out: string[] = [];
  for (const c of name.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') out.pop();
    else out.push(c);
  }
  return out.join('/');
}

function keepXattr(name: string): boolean {
  return name.startsWith('user.') || name === 'security.capability';
}

export async function unpackLayer(tar: AsyncIterable<Buffer | Uint8Array | string>, dir: string, addon: NativeAddon = loadNative()): Promise<UnpackResult> {
  const root = addon.unpackOpenRoot(dir);
  const result: UnpackResult = { entries: 0, skipped: [] };
  // Directories get their mode and mtime last, deepest first: writing into a directory
  // changes its mtime, and a read-only mode would stop the writes.
  const dirMeta = new Map<string, UnpackMeta>();
  try {
    for await (const { entry, data } of readTar(tar)) {
      result.entries++;
      const path = layerPath(entry.name);
      const where = `layer member "${entry.name}"`;
      try {
        await member(addon, root, entry, path, data, result, dirMeta);
      } catch (e) {
        if (e instanceof RuntimeError) throw e.wrap(where);
        throw e;
      }
    }
    const dirs = [...dirMeta.values()].sort((a, b) => b.path.length - a.path.length);
    for (const m of dirs) addon.unpackMeta(root, m);
  } finally {
    addon.close(root);
  }
  return result;
}

async function member(
  addon: NativeAddon,
  root: number,
  e: TarEntry,
  path: string,
  data: AsyncIterable<Buffer>,
  result: UnpackResult,
  dirMeta: Map<string, UnpackMeta>,
): Promise<void> {
  const base = path.slice(path.lastIndexOf('/') + 1);
  const parent = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '';
  const meta: UnpackMeta = {
    path,
    uid: e.uid,
    gid: e.gid,
    mode: e.mode,
    mtimeSec: e.mtimeSec,
    mtimeNsec: e.mtimeNsec,
    xattrs: e.xattrs.filter(([k]) => keepXattr(k)),
  };
  if (base === OPAQUE) {
    if (parent === '') return; // the root of a layer cannot hide anything below it
    addon.unpackCreate(root, { kind: 'opaque', path: parent });
    return;
  }
  if (base.startsWith(WHITEOUT)) {
    const hidden = base.slice(WHITEOUT.length);
    if (hidden === '' || hidden === '.' || hidden === '..') throw new RuntimeError(`invalid whiteout name "${base}"`, { code: 'EINVAL', step: 'image' });
    addon.unpackCreate(root, { kind: 'whiteout', path: parent ? `${parent}/${hidden}` : hidden });
    return;
  }
  if (path === '') {
    // "./" itself: its owner and mode become the layer root's.
    if (e.type === 'directory') dirMeta.set('', { ...meta, path: '' });
    return;
  }
  switch (e.type) {
    case 'directory':
      addon.unpackCreate(root, { kind: 'directory', path, mode: 0o755 });
      dirMeta.set(path, meta);
      return;
    case 'file': {
      const fd = addon.unpackCreate(root, { kind: 'file', path });
      try {
        for await (const chunk of data) {
          let off = 0;
          while (off < chunk.length) off += (await write(fd, chunk, off, chunk.length - off)).bytesWritten;
        }
      } finally {
        fs.closeSync(fd);
      }
      addon.unpackMeta(root, meta);
      return;
    }
    case 'symlink':
      // The link's text is stored as it is: it is only ever resolved inside the container.
      addon.unpackCreate(root, { kind: 'symlink', path, target: e.linkname });
      addon.unpackMeta(root, { ...meta, mode: undefined, isSymlink: true });
      return;
    case 'hardlink': {
      const target = layerPath(e.linkname);
      if (target === '') throw new RuntimeError(`hard link to the layer root`, { code: 'EINVAL', step: 'image' });
      addon.unpackCreate(root, { kind: 'hardlink', path, target });
      return;
    }
    case 'fifo':
      addon.unpackCreate(root, { kind: 'fifo', path, mode: e.mode });
      addon.unpackMeta(root, meta);
      return;
    case 'char':
    case 'block':
      result.skipped.push({ path, why: `${e.type} device ${e.devmajor}:${e.devminor} not created` });
      return;
  }
}
