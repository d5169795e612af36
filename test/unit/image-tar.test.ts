import { describe, expect, it } from 'vitest';
import { readTar, tarArchive, type TarWriteEntry } from '../../src/image/tar.js';

async function read(b: Buffer, chunk = 333) {
  async function* src() {
    for (let i = 0; i < b.length; i += chunk) yield b.subarray(i, i + chunk);
  }
  const out: { name: string; type: string; data: string; linkname: string; xattrs: [string, Buffer][]; uid: number; mtimeNsec: number }[] = [];
  for await (const { entry, data } of readTar(src())) {
    const parts: Buffer[] = [];
    if (entry.name.endsWith('skip-me')) {
      out.push({ ...entry, data: '' });
      continue;
    }
    for await (const c of data) parts.push(c);
    out.push({ ...entry, data: Buffer.concat(parts).toString() });
  }
  return out;
}

describe('tar reader', () => {
  it('reads what the writer writes: long names and links (pax), binary xattrs, large ids, skipped data', async () => {
    const long = `${'d'.repeat(120)}/${'f'.repeat(120)}`;
    const entries: TarWriteEntry[] = [
      { name: 'dir/', type: 'directory' },
      { name: 'dir/a', type: 'file', data: Buffer.from('hello'), xattrs: [['user.bin', Buffer.from([0, 255, 10, 61])]] },
      { name: 'dir/skip-me', type: 'file', data: Buffer.alloc(2000, 1) },
      { name: long, type: 'file', data: Buffer.from('x'.repeat(1025)), uid: 3_000_000 },
      { name: 'ln', type: 'symlink', linkname: `/${long}` },
      { name: 'hard', type: 'hardlink', linkname: 'dir/a', pax: [['mtime', '12.5']] },
    ];
    const got = await read(tarArchive(entries));
    expect(got.map((e) => [e.name, e.type])).toEqual([['dir/', 'directory'], ['dir/a', 'file'], ['dir/skip-me', 'file'], [long, 'file'], ['ln', 'symlink'], ['hard', 'hardlink']]);
    expect(got[1]!.data).toBe('hello');
    expect(got[1]!.xattrs).toEqual([['user.bin', Buffer.from([0, 255, 10, 61])]]);
    expect(got[3]!.data).toHaveLength(1025);
    expect(got[3]!.uid).toBe(3_000_000);
    expect(got[4]!.linkname).toBe(`/${long}`);
    expect(got[5]!.mtimeNsec).toBe(500_000_000);
  });

  it('reads GNU long names and refuses a corrupt header, naming the offset', async () => {
    const name = 'n'.repeat(150);
    const longHeader = tarArchive([{ name: '././@LongLink', type: 'file', data: Buffer.from(`${name}\0`) }]).subarray(0, 1024);
    longHeader[156] = 'L'.charCodeAt(0);
    // the checksum covers the type flag: recompute it
    longHeader.fill(0x20, 148, 156);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += longHeader[i]!;
    longHeader.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    const member = tarArchive([{ name: 'short', type: 'file', data: Buffer.from('ok') }]);
    const got = await read(Buffer.concat([longHeader, member]));
    expect(got[0]).toMatchObject({ name, data: 'ok' });
    const bad = Buffer.from(member);
    bad[10] = 0x41;
    await expect(read(bad)).rejects.toThrow(/bad header checksum .*at byte 0/);
    await expect(read(member.subarray(0, 600))).rejects.toThrow(/truncated/);
  });
});
