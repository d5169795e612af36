/**
 * One stream's log read into lines, each timed from the log's index once it is known.
 */
import * as fsp from 'node:fs/promises';
import { LogIndex } from './log-index.js';

const CHUNK = 64 * 1024;
// A "line" without a newline for this long (binary output) is yielded in pieces of this size,
// so no single line holds a reader's memory.
const MAX_LINE = 1024 * 1024;
// While following, a line the spawner has not indexed yet is held this long for its record
// (normally written within a millisecond) before it is timed without one.
const INDEX_GRACE_MS = 25;

interface Pending {
  bytes: Buffer;
  end: number;
  time?: number;
  seenAt: number;
}

export class StreamReader {
  fh!: fsp.FileHandle;
  private readonly index: LogIndex;
  /** Next byte to read from the log. */
  pos = 0;
  /** Read up to here this round. */
  limit = 0;
  /** The log's mtime at the last fstat: the time of lines the index does not cover. */
  mtimeMs = 0;
  parts: Buffer[] = [];
  partLen = 0;
  lines: Pending[] = [];
  lastTime = 0;

  constructor(
    readonly stream: 'stdout' | 'stderr',
    readonly path: string,
  ) {
    this.index = new LogIndex(path + '.idx');
  }

  async open(): Promise<void> {
    this.fh = await fsp.open(this.path, 'r');
    await this.refreshSize();
  }

  async refreshSize(): Promise<number> {
    const st = await this.fh.stat();
    this.mtimeMs = st.mtimeMs;
    this.limit = st.size;
    this.index.retry();
    return st.size;
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.fh?.close(), this.index.close()]);
  }

  /** Where reading starts so that no line written at or after `since` is skipped. */
  async sinceStart(since: number): Promise<number> {
    const size = await this.index.sizeBefore(since);
    if (size === undefined) return 0;
    return this.lineStartAt(Math.min(size, this.limit));
  }

  /** The start of the line that holds byte `off` (or starts there). */
  private async lineStartAt(off: number): Promise<number> {
    const nl = await this.newlineBefore(off, 1);
    return nl < 0 ? 0 : nl + 1;
  }

  /**
   * The offset of the `count`-th newline before `end`, scanning backwards in chunks so a large
   * log is not read whole; -1 when there are fewer.
   */
  async newlineBefore(end: number, count: number): Promise<number> {
    if (count <= 0) return end - 1;
    const buf = Buffer.allocUnsafe(CHUNK);
    let p = end;
    while (p > 0) {
      const from = Math.max(0, p - CHUNK);
      const { bytesRead } = await this.fh.read(buf, 0, p - from, from);
      let i = bytesRead;
      while (i > 0) {
        const at = buf.lastIndexOf(10, i - 1);
        if (at < 0 || at >= i) break;
        if (--count === 0) return from + at;
        i = at;
      }
      p = from;
    }
    return -1;
  }

  /** The start of the last `n` lines before `end`; a partial line at the end counts as one if `partialCounts`. */
  async tailStart(n: number, partialCounts: boolean): Promise<number> {
    const end = this.limit;
    if (end === 0) return 0;
    const last = Buffer.alloc(1);
    await this.fh.read(last, 0, 1, end - 1);
    const partial = last[0] !== 10;
    // Newlines to pass from the end: the one ending each wanted complete line, plus the one
    // before the first of them.
    const need = partial && partialCounts ? n : n + 1;
    if (need === 0) return end;
    const nl = await this.newlineBefore(end, need);
    return nl < 0 ? 0 : nl + 1;
  }

  async seek(start: number): Promise<void> {
    this.pos = start;
    this.parts = [];
    this.partLen = 0;
    this.lines = [];
    await this.index.seek(start);
  }

  /** Reads the next chunk up to `limit` into complete lines; false when there is nothing left. */
  async readChunk(): Promise<boolean> {
    if (this.pos >= this.limit) return false;
    const want = Math.min(CHUNK, this.limit - this.pos);
    const buf = Buffer.allocUnsafe(want);
    const { bytesRead } = await this.fh.read(buf, 0, want, this.pos);
    if (bytesRead === 0) {
      this.limit = this.pos;
      return false;
    }
    const base = this.pos;
    this.pos += bytesRead;
    const now = Date.now();
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(10, start);
      if (nl < 0 || nl >= bytesRead) break;
      this.pushLine(buf.subarray(start, nl), base + nl + 1, now);
      start = nl + 1;
    }
    let rest = buf.subarray(start, bytesRead);
    while (this.partLen + rest.length >= MAX_LINE) {
      const take = MAX_LINE - this.partLen;
      this.pushLine(rest.subarray(0, take), base + start + take, now);
      start += take;
      rest = rest.subarray(take);
    }
    if (rest.length > 0) {
      this.parts.push(rest);
      this.partLen += rest.length;
    }
    return true;
  }

  private pushLine(tail: Buffer, end: number, now: number): void {
    const bytes = this.partLen === 0 ? Buffer.from(tail) : Buffer.concat([...this.parts, tail]);
    this.parts = [];
    this.partLen = 0;
    this.lines.push({ bytes, end, seenAt: now });
  }

  /** Makes what is left of a partial line (the container has exited) a line of its own. */
  flushPartial(): void {
    if (this.partLen === 0) return;
    this.pushLine(Buffer.alloc(0), this.pos, Date.now());
  }

  /**
   * The time of the first pending line: from its index record, else (when `hold` is false or
   * its grace is over) the log's mtime, which no byte of the file was written after; undefined
   * while it is held for its record.
   */
  async headTime(hold: boolean): Promise<number | undefined> {
    const line = this.lines[0];
    if (!line) return undefined;
    if (line.time !== undefined) return line.time;
    const t = await this.index.timeOf(line.end);
    if (t !== undefined) return this.stamp(line, t);
    if (hold && this.index.opened && Date.now() - line.seenAt < INDEX_GRACE_MS) return undefined;
    return this.stamp(line, this.mtimeMs);
  }

  private stamp(line: Pending, t: number): number {
    // A stream's lines never go back in time, whatever the fallback said about earlier ones.
    line.time = Math.max(Math.floor(t), this.lastTime);
    this.lastTime = line.time;
    return line.time;
  }

  /** How long the first pending line may still be held. */
  holdLeft(): number {
    const line = this.lines[0];
    return line ? Math.max(1, INDEX_GRACE_MS - (Date.now() - line.seenAt)) : INDEX_GRACE_MS;
  }
}
