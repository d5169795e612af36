/**
 * The spawner keeps "<log>.idx" beside each log: 16-byte records of two little-endian u64,
 * { time_ms, size_after }, appended when it sees the file grow, at most one per millisecond.
 * A record says the first size_after bytes were in the file by time_ms, so a line's time is
 * that of the first record whose size_after reaches the line's end. Records grow in
 * size_after; their times are assumed not to go backwards (a stepped clock makes `since`
 * seek imprecisely, never wrongly filter a line it reads).
 */
import * as fsp from 'node:fs/promises';

const RECORD = 16;
const CHUNK = 64 * 1024;

interface Rec {
  time: number;
  size: number;
}

/** One log's index, read forward from a seek point as the log's lines are timed. */
export class LogIndex {
  private fh: fsp.FileHandle | undefined;
  /** No index file at the last try: tried again next round, not for every line. */
  private missing = false;
  private pos = 0;
  private recs: Rec[] = [];
  private head = 0;

  constructor(private readonly path: string) {}

  get opened(): boolean {
    return this.fh !== undefined;
  }

  /** A new round: an index that was missing may exist by now. */
  retry(): void {
    this.missing = false;
  }

  async close(): Promise<void> {
    await this.fh?.close();
  }

  private async open(): Promise<boolean> {
    if (this.fh) return true;
    if (this.missing) return false;
    try {
      this.fh = await fsp.open(this.path, 'r');
      return true;
    } catch {
      this.missing = true;
      return false;
    }
  }

  private async record(i: number): Promise<Rec | undefined> {
    const b = Buffer.alloc(RECORD);
    const { bytesRead } = await this.fh!.read(b, 0, RECORD, i * RECORD);
    return bytesRead === RECORD ? parseRecord(b, 0) : undefined;
  }

  private async recordCount(): Promise<number> {
    return Math.floor((await this.fh!.stat()).size / RECORD);
  }

  /** Index of the first record for which `pred` holds (records are ordered for it), or count. */
  private async search(pred: (r: Rec) => boolean): Promise<number> {
    let lo = 0;
    let hi = await this.recordCount();
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const r = await this.record(mid);
      if (r && pred(r)) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /**
   * The size recorded just before the first record at or after `since`: every line that ends
   * by it was written before `since`. Undefined when no such record is known.
   */
  async sizeBefore(since: number): Promise<number | undefined> {
    if (!(await this.open())) return undefined;
    const k = await this.search((r) => r.time >= since);
    if (k === 0) return undefined;
    const prev = await this.record(k - 1);
    return prev?.size;
  }

  async seek(start: number): Promise<void> {
    this.recs = [];
    this.head = 0;
    this.pos = 0;
    if (start > 0 && (await this.open())) {
      // Records that end before the start time no line this reader will see.
      this.pos = (await this.search((r) => r.size > start)) * RECORD;
    }
  }

  /**
   * The time of the first record that reaches `end`, for ends that never decrease between
   * seeks; undefined while the index does not reach it (or does not exist).
   */
  async timeOf(end: number): Promise<number | undefined> {
    for (;;) {
      while (this.head < this.recs.length && this.recs[this.head]!.size < end) this.head++;
      const r = this.recs[this.head];
      if (r) return r.time;
      if (!(await this.load())) return undefined;
    }
  }

  /** Loads more records; false when the index has no more (or does not exist). */
  private async load(): Promise<boolean> {
    if (!(await this.open())) return false;
    const buf = Buffer.allocUnsafe(CHUNK - (CHUNK % RECORD));
    const { bytesRead } = await this.fh!.read(buf, 0, buf.length, this.pos);
    const whole = bytesRead - (bytesRead % RECORD);
    if (whole === 0) return false;
    if (this.head > 0) {
      this.recs = this.recs.slice(this.head);
      this.head = 0;
    }
    for (let o = 0; o < whole; o += RECORD) this.recs.push(parseRecord(buf, o));
    this.pos += whole;
    return true;
  }
}

function parseRecord(b: Buffer, o: number): Rec {
  return { time: Number(b.readBigUInt64LE(o)), size: Number(b.readBigUInt64LE(o + 8)) };
}
