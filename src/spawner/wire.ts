/**
 * The spawner's message format (native/wire.h is the other side): a frame is a
 * little-endian u32 length and that many bytes; the bytes are fields, each a u32 length and
 * its bytes. The first field names the message.
 */
export const MAX_FRAME = 4 << 20;

/** A field as sent: text, or bytes (a seccomp program). Replies are always text. */
export type WireField = string | Buffer;

/** The body size encodeFrame would give `fields` (the frame adds 4 bytes of length). */
export function encodedSize(fields: readonly WireField[]): number {
  return fields.reduce((n, f) => n + 4 + (typeof f === 'string' ? Buffer.byteLength(f) : f.length), 0);
}

export function encodeFrame(fields: readonly WireField[]): Buffer {
  const parts = fields.map((f) => (typeof f === 'string' ? Buffer.from(f, 'utf8') : f));
  const size = parts.reduce((n, p) => n + 4 + p.length, 0);
  const out = Buffer.allocUnsafe(4 + size);
  out.writeUInt32LE(size, 0);
  let off = 4;
  for (const p of parts) {
    out.writeUInt32LE(p.length, off);
    p.copy(out, off + 4);
    off += 4 + p.length;
  }
  return out;
}

/** Collects bytes from a stream and yields whole frames as lists of fields. */
export class FrameDecoder {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): string[][] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const frames: string[][] = [];
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32LE(0);
      if (len > MAX_FRAME) throw new Error(`frame of ${len} bytes exceeds the ${MAX_FRAME}-byte limit`);
      if (this.buf.length < 4 + len) break;
      frames.push(decodeBody(this.buf.subarray(4, 4 + len)));
      this.buf = this.buf.subarray(4 + len);
    }
    return frames;
  }
}

export function decodeBody(body: Buffer): string[] {
  const fields: string[] = [];
  let off = 0;
  while (off < body.length) {
    if (body.length - off < 4) throw new Error('truncated field length');
    const len = body.readUInt32LE(off);
    off += 4;
    if (len > body.length - off) throw new Error('field runs past the end of the frame');
    fields.push(body.toString('utf8', off, off + len));
    off += len;
  }
  return fields;
}
