/**
 * The image store on the real filesystem, as root: hostile layer archives (path traversal,
 * symlink escape, hard links to host files, device nodes) checked against the host; import
 * of an OCI layout (directory and tar) and of a docker save archive; export; remove and
 * prune.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageStore } from '../../src/image/images.js';
import { tarArchive, type TarWriteEntry } from '../../src/image/tar.js';
import { unpackLayer } from '../../src/image/unpack.js';
import { have, writeLayout } from '../helpers/registry.js';
import { IS_ROOT, SKIP_REASON } from '../helpers/runtime.js';
import { skipBecause } from '../helpers/skip.js';

let work: string;
const hostDir = `/tmp/ss-host-target-${process.pid}`;
const file = (name: string, text: string, extra: Partial<TarWriteEntry> = {}): TarWriteEntry => ({ name, type: 'file', data: Buffer.from(text), ...extra });

async function* chunks(b: Buffer): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += 700) yield b.subarray(i, i + 700);
}

async function unpack(entries: TarWriteEntry[]): Promise<{ dir: string; error?: Error; skipped: { path: string }[] }> {
  const dir = fs.mkdtempSync(join(work, 'layer-'));
  try {
    const r = await unpackLayer(chunks(tarArchive(entries)), dir);
    return { dir, skipped: r.skipped };
  } catch (e) {
    return { dir, error: e as Error, skipped: [] };
  }
}

function newStore(): ImageStore {
  return new ImageStore(fs.mkdtempSync(join(work, 'store-')), 'registry.stratoswarm.io');
}

describe.skipIf(skipBecause(SKIP_REASON, 'image store tests'))('image store (root, real filesystem)', () => {
  beforeAll(() => {
    work = fs.mkdtempSync(join(tmpdir(), 'ss-store-'));
    fs.mkdirSync(hostDir, { mode: 0o755 });
    fs.writeFileSync(join(hostDir, 'victim'), 'host');
  });
  afterAll(() => {
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(hostDir, { recursive: true, force: true });
  });

  it('keeps absolute and ../ names inside the layer', async () => {
    const { dir, error } = await unpack([file(`../../../../..${hostDir}/dotdot`, 'x'), file(`${hostDir}/absolute`, 'x'), file('./a/../../b', 'x')]);
    expect(error).toBeUndefined();
    expect(fs.existsSync(join(hostDir, 'dotdot'))).toBe(false);
    expect(fs.existsSync(join(hostDir, 'absolute'))).toBe(false);
    expect(fs.readFileSync(join(dir, hostDir.slice(1), 'dotdot'), 'utf8')).toBe('x');
    expect(fs.readFileSync(join(dir, hostDir.slice(1), 'absolute'), 'utf8')).toBe('x');
    expect(fs.existsSync(join(dir, 'b'))).toBe(true);
  });

  it('refuses to write through a symlink the archive planted, absolute or relative', async () => {
    for (const target of [hostDir, `../../../../../..${hostDir}`]) {
      const { dir, error } = await unpack([{ name: 'evil', type: 'symlink', linkname: target }, file('evil/pwned', 'x'), file('evil/victim', 'overwritten')]);
      expect(error?.message).toMatch(/layer member "evil\/pwned".*ELOOP/);
      expect(fs.readlinkSync(join(dir, 'evil'))).toBe(target); // stored as it is, resolved only inside a container
    }
    expect(fs.existsSync(join(hostDir, 'pwned'))).toBe(false);
    expect(fs.readFileSync(join(hostDir, 'victim'), 'utf8')).toBe('host');
  });

  it('never chmods or chowns through a symlink that replaced a directory', async () => {
    const before = fs.statSync(hostDir);
    const { error } = await unpack([{ name: 'd/', type: 'directory', mode: 0o777, uid: 4321 }, { name: 'd', type: 'symlink', linkname: hostDir }]);
    expect(error).toBeUndefined();
    const after = fs.statSync(hostDir);
    expect([after.mode, after.uid]).toEqual([before.mode, before.uid]);
  });

  it('refuses a hard link to a host file, by absolute path or ../', async () => {
    const nlink = fs.statSync('/etc/passwd').nlink;
    for (const target of ['/etc/passwd', '../../../../../../etc/passwd', `${hostDir}/victim`]) {
      const { dir, error } = await unpack([{ name: 'stolen', type: 'hardlink', linkname: target }]);
      expect(error?.message).toMatch(/layer member "stolen": (openat2|linkat) .*ENOENT/);
      expect(fs.existsSync(join(dir, 'stolen'))).toBe(false);
    }
    expect(fs.statSync('/etc/passwd').nlink).toBe(nlink);
    expect(fs.statSync(join(hostDir, 'victim')).nlink).toBe(1);
    // A hard link inside the layer is kept.
    const { dir, error } = await unpack([file('a', 'same'), { name: 'b', type: 'hardlink', linkname: '/a' }]);
    expect(error).toBeUndefined();
    expect(fs.statSync(join(dir, 'b')).ino).toBe(fs.statSync(join(dir, 'a')).ino);
  });

  it('does not create device nodes; keeps owners, modes (setuid too), mtimes, user xattrs and FIFOs', async () => {
    const { dir, error, skipped } = await unpack([
      { name: 'dev/', type: 'directory' },
      { name: 'dev/mem', type: 'char', devmajor: 1, devminor: 1, mode: 0o666 },
      { name: 'dev/sda', type: 'block', devmajor: 8, devminor: 0 },
      file('bin/su', 'elf', { mode: 0o4755, uid: 0, gid: 0, mtime: 1_000_000_000, xattrs: [['user.origin', Buffer.from([0, 1, 2, 255])], ['trusted.overlay.redirect', Buffer.from('/etc')]] }),
      file('home/u/f', 'x', { uid: 1000, gid: 1001, mode: 0o600 }),
      { name: 'run/fifo', type: 'fifo', mode: 0o620 },
    ]);
    expect(error).toBeUndefined();
    expect(skipped.map((s) => s.path)).toEqual(['dev/mem', 'dev/sda']);
    expect(fs.existsSync(join(dir, 'dev/mem'))).toBe(false);
    const su = fs.statSync(join(dir, 'bin/su'));
    expect([su.mode & 0o7777, su.mtimeMs]).toEqual([0o4755, 1_000_000_000_000]);
    const f = fs.statSync(join(dir, 'home/u/f'));
    expect([f.uid, f.gid, f.mode & 0o777]).toEqual([1000, 1001, 0o600]);
    expect(fs.statSync(join(dir, 'run/fifo')).isFIFO()).toBe(true);
    if (have('getfattr')) {
      const attrs = execFileSync('getfattr', ['--absolute-names', '-d', '-m', '-', '-e', 'hex', join(dir, 'bin/su')], { encoding: 'utf8' });
      expect(attrs).toContain('user.origin=0x000102ff');
      expect(attrs).not.toContain('trusted.overlay');
    }
  });

  it('a hostile layer fails its import and leaves nothing in the store', async () => {
    const layout = join(work, 'hostile');
    writeLayout(layout, [{ tag: 'bad', layers: [{ entries: [{ name: 'x', type: 'symlink', linkname: hostDir }, file('x/pwned', 'x')] }] }]);
    const s = newStore();
    await expect(s.import(layout, { ref: 'test/hostile:bad' })).rejects.toThrow(/ELOOP/);
    expect(fs.existsSync(join(hostDir, 'pwned'))).toBe(false);
    expect(s.has('test/hostile:bad')).toBe(false);
    expect(fs.readdirSync(join(s.root, 'layers'))).toEqual([]);
    expect(fs.readdirSync(join(s.root, 'tmp'))).toEqual([]);
    // A blob that does not match its descriptor (here the config, one byte longer) is refused too.
    const lie = join(work, 'lie');
    writeLayout(lie, [{ tag: 'v', layers: [{ entries: [file('a', 'a')] }] }]);
    const cfgPath = (() => {
      const idx = JSON.parse(fs.readFileSync(join(lie, 'index.json'), 'utf8'));
      const m = JSON.parse(fs.readFileSync(join(lie, 'blobs/sha256', idx.manifests[0].digest.slice(7)), 'utf8'));
      return join(lie, 'blobs/sha256', m.config.digest.slice(7));
    })();
    fs.appendFileSync(cfgPath, ' ');
    await expect(newStore().import(lie, { ref: 'test/lie:v' })).rejects.toThrow(/blob sha256:[0-9a-f]+: .* \(rejected\)/);
  });

  it('imports an OCI layout (directory and tar) and a docker save archive; exports a layout', async () => {
    const layout = join(work, 'good');
    writeLayout(layout, [{ tag: 'v1', layers: [{ entries: [file('etc/os', 'one')] }, { entries: [file('etc/two', 'two')], compression: 'none' }], config: { Cmd: ['/bin/true'], Env: ['A=1'] } }]);
    const s = newStore();
    const a = await s.import(layout, { ref: 'team/good:v1' });
    expect(a.refs).toEqual(['registry.stratoswarm.io/team/good:v1']);
    const img = s.resolve('team/good:v1');
    expect(img.config.cmd).toEqual(['/bin/true']);
    expect(fs.readFileSync(join(img.layerPaths[1]!, 'etc/os'), 'utf8')).toBe('one');
    // A tar of the layout.
    const tarFile = join(work, 'good.tar');
    execFileSync('tar', ['-C', layout, '-cf', tarFile, '.']);
    const s2 = newStore();
    expect((await s2.import(tarFile, { ref: 'team/good:tar' })).manifest).toBe(a.manifest);
    // Without a reference, a layout that names only a tag is refused with the reason.
    await expect(newStore().import(layout)).rejects.toThrow(/names no repository .*\(only "v1"\): give a reference/);
    // Export, and import the export elsewhere: the same manifest.
    const out = join(work, 'exported');
    s.export('team/good:v1', out);
    const s3 = newStore();
    const back = await s3.import(out);
    expect(back).toMatchObject({ refs: ['registry.stratoswarm.io/team/good:v1'], manifest: a.manifest });
    // docker save, as skopeo writes it (Docker's manifest.json format).
    if (have('skopeo')) {
      const archive = join(work, 'saved.tar');
      execFileSync('skopeo', ['copy', '--quiet', `oci:${layout}:v1`, `docker-archive:${archive}:example.org/saved/app:v7`]);
      const s4 = newStore();
      const d = await s4.import(archive);
      expect(d.refs).toEqual(['example.org/saved/app:v7']);
      const saved = s4.resolve('example.org/saved/app:v7');
      expect(saved.config.env).toEqual(['A=1']);
      expect(fs.readFileSync(join(saved.layerPaths[0]!, 'etc/two'), 'utf8')).toBe('two');
    } else console.warn('docker save import skipped: needs skopeo');
  });

  it('remove is refused while a container uses the image unless forced; prune frees only what nothing references', async () => {
    const layout = join(work, 'two');
    const shared = { entries: [file('shared', 's')] };
    writeLayout(layout, [
      { tag: 'a', layers: [shared, { entries: [file('only-a', 'a')] }] },
      { tag: 'b', layers: [shared, { entries: [file('only-b', 'b')] }] },
    ]);
    const users: { id: string; ref: string; layers: string[] }[] = [];
    const s = new ImageStore(fs.mkdtempSync(join(work, 'store-')), 'registry.stratoswarm.io', { users: () => users });
    await s.import(layout, { ref: 'x/img:a' });
    await s.import(layout, { ref: 'x/img:b' });
    const a = s.resolve('x/img:a');
    const b = s.resolve('x/img:b');
    expect(a.layers[1]).toBe(b.layers[1]); // the shared layer, unpacked once
    expect(fs.readdirSync(join(s.root, 'layers'))).toHaveLength(3);
    users.push({ id: 'c0ffee0123456789', ref: 'x/img:a', layers: a.layers });
    expect(() => s.remove('x/img:a')).toThrow(/in use by container c0ffee012345/);
    s.remove('x/img:b');
    const du = s.diskUsage();
    const freed = await s.prune();
    expect(freed.layers).toEqual([b.layers[0]]);
    expect(freed.freedBytes).toBeGreaterThan(0);
    expect(s.diskUsage().blobs.count).toBeLessThan(du.blobs.count);
    expect(fs.existsSync(s.layerPath(a.layers[0]!)) && fs.existsSync(s.layerPath(a.layers[1]!))).toBe(true);
    // Forced removal while in use; the container's layers stay until it is gone.
    s.remove('x/img:a', { force: true });
    expect((await s.prune()).layers).toEqual([]);
    users.length = 0;
    expect((await s.prune()).layers.sort()).toEqual([...a.layers].sort());
    expect(s.diskUsage()).toMatchObject({ images: 0, layers: { count: 0 }, blobs: { count: 0 } });
  });
});
