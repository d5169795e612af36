/**
 * A streaming tar reader and a small writer: ustar, pax extended headers (long names, large
 * sizes and ids, sub-second mtimes, binary-safe `SCHILY.xattr.*`) and GNU long names. The
 * reader checks every header's checksum and hands out each member's data as an async
 * iterable that must be drained (or skipped) before the next member is read.
 */
import { RuntimeError } from '../errors.js';

export type TarType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'directory' | 'fifo';

export interface TarEntry {
  name: string;
  type: TarType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeSec: number;
  mtimeNsec: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  xattrs: [string, Buffer][];
}

const BLOCK = 512;

function tarError(msg: string, offset: number): RuntimeError {
  return new RuntimeError(`tar: ${msg} (at byte ${offset})`, { code: 'EINVAL', step: 'image' });
}

/** Reads exactly the bytes asked for from a stream of chunks. */
class Bytes {
  private chunks: Buffer[] = [];
  private have = 0;
  offset = 0;
  private done = false;
  constructor(private readonly it: AsyncIterator<Buffer | Uint8Array | string>) {}

  private async fill(n: number): Promise<boolean> {
    while (this.have < n && !this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else {
        const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value as Uint8Array);
        if (b.length) {
          this.chunks.push(b);
          this.have += b.length;
        }
      }
    }
    return this.have >= n;
  }

  /** Exactly n bytes, or null at a clean end of input (nothing left). */
  async read(n: number): Promise<Buffer | null> {
    if (!(await this.fill(n))) {
      if (this.have === 0) return null;
      throw tarError(`truncated archive: wanted ${n} bytes, ${this.have} left`, this.offset);
    }
    return this.take(n);
  }

  private take(n: number): Buffer {
    let out: Buffer;
    if (this.chunks[0]!.length >= n) {
      const c = this.chunks[0]!;
      out = c.subarray(0, n);
      if (c.length === n) this.chunks.shift();
      else this.chunks[0] = c.subarray(n);
    } else {
      out = Buffer.concat(this.chunks, this.have).subarray(0, n);
      const rest = Buffer.concat(this.chunks, this.have).subarray(n);
      this.chunks = rest.length ? [rest] : [];
    }
    this.have -= n;
    this.offset += n;
    return out;
  }

  /** Up to n bytes as they arrive, without concatenating. */
  async *stream(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.have === 0 && !(await this.fill(1))) throw tarError(`truncated archive: member data ends ${left} bytes early`, this.offset);
      const first = this.chunks[0]!;
      const k = Math.min(left, first.length);
      left -= k;
      yield this.take(k);
    }
  }

  async skip(n: number): Promise<void> {
    for await (const _ of this.stream(n)) void _;
  }
}

function cstr(b: Buffer): string {
  const z = b.indexOf(0);
  return b.subarray(0, z < 0 ? b.length : z).toString('utf8');
}

function num(b: Buffer, what: string, offset: number): number {
  if (b[0]! & 0x80) {
    // base-256: big-endian, the top bit of the first byte a flag
    let v = b[0]! & 0x3f;
    if (b[0]! & 0x40) throw tarError(`negative ${what}`, offset);
    for (let i = 1; i < b.length; i++) v = v * 256 + b[i]!;
    if (!Number.isSafeInteger(v)) throw tarError(`${what} too large`, offset);
    return v;
  }
  const s = b.toString('latin1').replace(/\0.*$/s, '').trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw tarError(`${what} is not an octal number: "${s}"`, offset);
  return parseInt(s, 8);
}

function checksumOk(h: Buffer): boolean {
  const stored = parseInt(h.subarray(148, 156).toString('latin1').replace(/\0.*$/s, '').trim() || 'x', 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : h[i]!;
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  return stored === unsigned || stored === signed;
}

/** pax records: "LEN key=value\n", values as raw bytes. */
function parsePax(b: Buffer, offset: number): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let i = 0;
  while (i < b.length && b[i] !== 0) {
    const sp = b.indexOf(0x20, i);
    const len = sp < 0 ? NaN : Number(b.subarray(i, sp).toString('latin1'));
    if (!Number.isInteger(len) || len <= 0 || i + len > b.length) throw tarError('malformed pax record', offset);
    const rec = b.subarray(sp + 1, i + len - 1); // without the trailing newline
    const eq = rec.indexOf(0x3d);
    if (eq < 0) throw tarError('malformed pax record', offset);
    out.set(rec.subarray(0, eq).toString('utf8'), Buffer.from(rec.subarray(eq + 1)));
    i += len;
  }
  return out;
}

const TYPES: Record<string, TarType> = { '0': 'file', '\0': 'file', '7': 'file', '1': 'hardlink', '2': 'symlink', '3': 'char', '4': 'block', '5': 'directory', '6': 'fifo' };

/**
 * The members of a tar stream, in order. Each member's data must be consumed through
 * `data` (or left alone: it is skipped) before asking for the next member.
 */
export async function* readTar(source: AsyncIterable<Buffer | Uint8Array | string>): AsyncGenerator<{ entry: TarEntry; data: AsyncIterable<Buffer> }> {
  const bytes = new Bytes(source[Symbol.asyncIterator]());
  let global = new Map<string, Buffer>();
  let local = new Map<string, Buffer>();
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    const at = bytes.offset;
    const h = await bytes.read(BLOCK);
    if (h === null) return; // no end blocks: tolerated, as GNU tar does
    if (h.every((c) => c === 0)) return;
    if (!checksumOk(h)) throw tarError('bad header checksum (not a tar archive, or corrupt)', at);
    const flag = String.fromCharCode(h[156]!);
    let size = num(h.subarray(124, 136), 'size', at);
    const pax = new Map([...global, ...local]);
    if (pax.has('size')) size = Number(pax.get('size')!.toString());
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      if (size > 16 << 20) throw tarError(`extended header of ${size} bytes`, at);
      const body = size === 0 ? Buffer.alloc(0) : (await bytes.read(padded))!.subarray(0, size);
      if (flag === 'x') local = parsePax(body, at);
      else if (flag === 'g') global = new Map([...global, ...parsePax(body, at)]);
      else if (flag === 'L') longName = cstr(body);
      else longLink = cstr(body);
      continue;
    }
    const type = TYPES[flag];
    if (!type) throw tarError(`member type "${flag}" is not supported`, at);
    const ustar = h.subarray(257, 262).toString('latin1') === 'ustar';
    const prefix = ustar ? cstr(h.subarray(345, 500)) : '';
    let name = longName ?? (prefix ? `${prefix}/${cstr(h.subarray(0, 100))}` : cstr(h.subarray(0, 100)));
    let linkname = longLink ?? cstr(h.subarray(157, 257));
    if (pax.has('path')) name = pax.get('path')!.toString('utf8');
    if (pax.has('linkpath')) linkname = pax.get('linkpath')!.toString('utf8');
    const paxNum = (k: string, dflt: number) => (pax.has(k) ? Number(pax.get(k)!.toString()) : dflt);
    let mtimeSec = num(h.subarray(136, 148), 'mtime', at);
    let mtimeNsec = 0;
    if (pax.has('mtime')) {
      const [s, frac = ''] = pax.get('mtime')!.toString().split('.');
      mtimeSec = Number(s);
      mtimeNsec = Number((frac + '000000000').slice(0, 9));
    }
    const xattrs: [string, Buffer][] = [];
    for (const [k, v] of pax) {
      if (k.startsWith('SCHILY.xattr.')) xattrs.push([k.slice(13), v]);
      else if (k.startsWith('LIBARCHIVE.xattr.')) xattrs.push([decodeURIComponent(k.slice(17)), Buffer.from(v.toString(), 'base64')]);
    }
    const entry: TarEntry = {
      name,
      type,
      mode: num(h.subarray(100, 108), 'mode', at) & 0o7777,
      uid: paxNum('uid', num(h.subarray(108, 116), 'uid', at)),
      gid: paxNum('gid', num(h.subarray(116, 124), 'gid', at)),
      size: type === 'file' ? size : 0,
      mtimeSec,
      mtimeNsec,
      linkname,
      devmajor: ustar ? num(h.subarray(329, 337), 'devmajor', at) : 0,
      devminor: ustar ? num(h.subarray(337, 345), 'devminor', at) : 0,
      xattrs,
    };
    if (!Number.isSafeInteger(entry.uid) || !Number.isSafeInteger(entry.gid) || !Number.isSafeInteger(size) || size < 0) throw tarError(`bad number in header of "${name}"`, at);
    local = new Map();
    longName = longLink = undefined;
    let consumed = false;
    const data: AsyncIterable<Buffer> = {
      [Symbol.asyncIterator]: () => {
        consumed = true;
        return bytes.stream(size)[Symbol.asyncIterator]();
      },
    };
    yield { entry, data };
    if (!consumed) await bytes.skip(size);
    // A partly drained member: skip the rest of it. Either way, skip the padding.
    const left = at + BLOCK + size - bytes.offset;
    if (left > 0) await bytes.skip(left);
    if (padded > size) await bytes.skip(padded - size);
  }
}

// ---- writing ----

export interface TarWriteEntry {
  name: string;
  type: TarType;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** File contents. */
  data?: Buffer;
  xattrs?: [string, Buffer][];
  /** Extra pax records (tests write hostile ones). */
  pax?: [string, Buffer | string][];
}

const FLAGS: Record<TarType, string> = { file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', directory: '5', fifo: '6' };

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

function header(name: string, flag: string, e: { mode: number; uid: number; gid: number; size: number; mtime: number; linkname: string; devmajor: number; devminor: number }): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name.slice(0, 100), 0, 'utf8');
  h.write(octal(e.mode, 8), 100, 'latin1');
  h.write(octal(Math.min(e.uid, 0o7777777), 8), 108, 'latin1');
  h.write(octal(Math.min(e.gid, 0o7777777), 8), 116, 'latin1');
  h.write(octal(Math.min(e.size, 0o77777777777), 12), 124, 'latin1');
  h.write(octal(e.mtime, 12), 136, 'latin1');
  h.write(flag, 156, 'latin1');
  h.write(e.linkname.slice(0, 100), 157, 'utf8');
  h.write('ustar\0' + '00', 257, 'latin1');
  h.write(octal(e.devmajor, 8), 329, 'latin1');
  h.write(octal(e.devminor, 8), 337, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const c of h) sum += c;
  h.write(octal(sum, 7) + ' ', 148, 'latin1');
  return h;
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function pad(n: number): Buffer {
  return Buffer.alloc((BLOCK - (n % BLOCK)) % BLOCK);
}

/** One member as tar blocks (a pax header first when a name, link or xattr needs one). */
export function tarMember(e: TarWriteEntry): Buffer[] {
  const data = e.type === 'file' ? (e.data ?? Buffer.alloc(0)) : Buffer.alloc(0);
  const records: Buffer[] = [];
  if (Buffer.byteLength(e.name) > 100) records.push(paxRecord('path', Buffer.from(e.name)));
  if (Buffer.byteLength(e.linkname ?? '') > 100) records.push(paxRecord('linkpath', Buffer.from(e.linkname!)));
  for (const [k, v] of e.xattrs ?? []) records.push(paxRecord(`SCHILY.xattr.${k}`, v));
  for (const [k, v] of e.pax ?? []) records.push(paxRecord(k, Buffer.isBuffer(v) ? v : Buffer.from(v)));
  if ((e.uid ?? 0) > 0o7777777) records.push(paxRecord('uid', Buffer.from(String(e.uid))));
  if ((e.gid ?? 0) > 0o7777777) records.push(paxRecord('gid', Buffer.from(String(e.gid))));
  const fields = {
    mode: e.mode ?? (e.type === 'directory' ? 0o755 : 0o644),
    uid: e.uid ?? 0,
    gid: e.gid ?? 0,
    size: data.length,
    mtime: e.mtime ?? 0,
    linkname: e.linkname ?? '',
    devmajor: e.devmajor ?? 0,
    devminor: e.devminor ?? 0,
  };
  const out: Buffer[] = [];
  if (records.length) {
    const body = Buffer.concat(records);
    out.push(header('PaxHeaders/' + e.name.slice(0, 80), 'x', { ...fields, size: body.length, linkname: '' }), body, pad(body.length));
  }
  out.push(header(e.name, FLAGS[e.type], fields));
  if (data.length) out.push(data, pad(data.length));
  return out;
}

/** A whole archive in memory. */
export function tarArchive(entries: TarWriteEntry[]): Buffer {
  return Buffer.concat([...entries.flatMap(tarMember), Buffer.alloc(BLOCK * 2)]);
}
