/**
 * A container's stdout and stderr go straight from its init to log files (no process in
 * between, so output survives the host agent); a reader follows a file as it grows and ends
 * once the container has exited and everything written has been read.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { Readable } from 'node:stream';

export function followFile(path: string, finished: Promise<unknown>, fromStart = true): Readable {
  let fd: number | undefined;
  let offset = 0;
  let watcher: fs.FSWatcher | undefined;
  let done = false;
  let wake: (() => void) | undefined;
  let reading = false;

  const stream = new Readable({
    read() {
      void pump();
    },
    destroy(err, cb) {
      watcher?.close();
      if (fd !== undefined) fs.close(fd, () => cb(err));
      else cb(err);
    },
  });

  finished.then(
    () => {
      done = true;
      wake?.();
    },
    () => {
      done = true;
      wake?.();
    },
  );

  async function pump(): Promise<void> {
    if (reading) return;
    reading = true;
    try {
      if (fd === undefined) {
        fd = fs.openSync(path, 'r');
        if (!fromStart) offset = fs.fstatSync(fd).size;
        watcher = fs.watch(path, () => wake?.());
        watcher.on('error', () => undefined);
      }
      for (;;) {
        const buf = Buffer.allocUnsafe(65536);
        const n = await new Promise<number>((res, rej) => fs.read(fd!, buf, 0, buf.length, offset, (e, b) => (e ? rej(e) : res(b))));
        if (n > 0) {
          offset += n;
          if (!stream.push(buf.subarray(0, n))) return;
          continue;
        }
        if (done) {
          // One more read after the exit was seen: the last write may have landed in between.
          const m = fs.readSync(fd!, buf, 0, buf.length, offset);
          if (m > 0) {
            offset += m;
            stream.push(buf.subarray(0, m));
            continue;
          }
          stream.push(null);
          return;
        }
        await new Promise<void>((res) => {
          wake = res;
          // inotify may coalesce or miss a write on some filesystems; a slow timer backs it up.
          setTimeout(res, 500).unref();
        });
        wake = undefined;
      }
    } catch (e) {
      stream.destroy(e as Error);
    } finally {
      reading = false;
    }
  }
  return stream;
}

/**
 * Lines of a container's logs with the time each was written, as `docker logs` shows them.
 *
 * The spawner keeps "<log>.idx" beside each log: 16-byte records of two little-endian u64,
 * { time_ms, size_after }, appended when it sees the file grow, at most one per millisecond.
 * A record says the first size_after bytes were in the file by time_ms, so a line's time is
 * that of the first record whose size_after reaches the line's end. Records grow in
 * size_after; their times are assumed not to go backwards (a stepped clock makes `since`
 * seek imprecisely, never wrongly filter a line it reads).
 */
export interface LogOptions {
  /** After the existing content, keep yielding new lines until the container has exited. */
  follow?: boolean;
  /** Only lines written at or after this time (ms since the epoch, or a Date). */
  since?: Date | number;
  /** Only the last N lines (of both streams, after `since`) of what exists when reading starts. */
  tail?: number;
  /** Both by default. */
  streams?: readonly ('stdout' | 'stderr')[];
  /** Ends the iterator with an AbortError and releases its files and watchers. */
  signal?: AbortSignal;
}

export interface LogLine {
  stream: 'stdout' | 'stderr';
  /** ms since the epoch */
  time: number;
  /** Without the trailing newline; a final partial line is yielded once the container has exited. */
  line: string;
}

const RECORD = 16;
const CHUNK = 64 * 1024;
// A "line" without a newline for this long (binary output) is yielded in pieces of this size,
// so no single line holds a reader's memory.
const MAX_LINE = 1024 * 1024;
// While following, a line the spawner has not indexed yet is held this long for its record
// (normally written within a millisecond) before it is timed without one.
const INDEX_GRACE_MS = 25;
// inotify may coalesce or miss a write on some filesystems; a slow timer backs it up.
const BACKUP_POLL_MS = 500;

interface Rec {
  time: number;
  size: number;
}

interface Pending {
  bytes: Buffer;
  end: number;
  time?: number;
  seenAt: number;
}

class StreamReader {
  fh!: fsp.FileHandle;
  idx: fsp.FileHandle | undefined;
  /** No index file at the last try: tried again next round, not for every line. */
  idxMissing = false;
  idxPos = 0;
  recs: Rec[] = [];
  recHead = 0;
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
  ) {}

  async open(): Promise<void> {
    this.fh = await fsp.open(this.path, 'r');
    await this.refreshSize();
  }

  async refreshSize(): Promise<number> {
    const st = await this.fh.stat();
    this.mtimeMs = st.mtimeMs;
    this.limit = st.size;
    this.idxMissing = false;
    return st.size;
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.fh?.close(), this.idx?.close()]);
  }

  private async openIndex(): Promise<boolean> {
    if (this.idx) return true;
    if (this.idxMissing) return false;
    try {
      this.idx = await fsp.open(this.path + '.idx', 'r');
      return true;
    } catch {
      this.idxMissing = true;
      return false;
    }
  }

  private async record(i: number): Promise<Rec | undefined> {
    const b = Buffer.alloc(RECORD);
    const { bytesRead } = await this.idx!.read(b, 0, RECORD, i * RECORD);
    return bytesRead === RECORD ? parseRecord(b, 0) : undefined;
  }

  private async recordCount(): Promise<number> {
    return Math.floor((await this.idx!.stat()).size / RECORD);
  }

  /** Index of the first record for which `pred` holds (records are ordered for it), or count. */
  private async searchIndex(pred: (r: Rec) => boolean): Promise<number> {
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

  /** Where reading starts so that no line written at or after `since` is skipped. */
  async sinceStart(since: number): Promise<number> {
    if (!(await this.openIndex())) return 0;
    const k = await this.searchIndex((r) => r.time >= since);
    if (k === 0) return 0;
    // Every line that ends by the previous record's size was written before `since`.
    const prev = await this.record(k - 1);
    if (!prev) return 0;
    return this.lineStartAt(Math.min(prev.size, this.limit));
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
    this.recs = [];
    this.recHead = 0;
    this.idxPos = 0;
    if (start > 0 && (await this.openIndex())) {
      // Records that end before the start time no line this reader will see.
      this.idxPos = (await this.searchIndex((r) => r.size > start)) * RECORD;
    }
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

  /** Loads more index records; false when the index has no more (or does not exist). */
  private async loadRecords(): Promise<boolean> {
    if (!(await this.openIndex())) return false;
    const buf = Buffer.allocUnsafe(CHUNK - (CHUNK % RECORD));
    const { bytesRead } = await this.idx!.read(buf, 0, buf.length, this.idxPos);
    const whole = bytesRead - (bytesRead % RECORD);
    if (whole === 0) return false;
    if (this.recHead > 0) {
      this.recs = this.recs.slice(this.recHead);
      this.recHead = 0;
    }
    for (let o = 0; o < whole; o += RECORD) this.recs.push(parseRecord(buf, o));
    this.idxPos += whole;
    return true;
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
    for (;;) {
      while (this.recHead < this.recs.length && this.recs[this.recHead]!.size < line.end) this.recHead++;
      const r = this.recs[this.recHead];
      if (r) return this.stamp(line, r.time);
      if (!(await this.loadRecords())) break;
    }
    if (hold && this.idx && Date.now() - line.seenAt < INDEX_GRACE_MS) return undefined;
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

function parseRecord(b: Buffer, o: number): Rec {
  return { time: Number(b.readBigUInt64LE(o)), size: Number(b.readBigUInt64LE(o + 8)) };
}

function abortError(signal: AbortSignal): Error {
  return Object.assign(new Error('The operation was aborted', { cause: signal.reason }), { name: 'AbortError', code: 'ABORT_ERR' });
}

export function logLines(
  files: { stdout: string; stderr: string },
  finished: Promise<unknown>,
  opts: LogOptions = {},
): AsyncIterableIterator<LogLine> {
  return readLogs(files, finished, opts);
}

async function* readLogs(
  files: { stdout: string; stderr: string },
  finished: Promise<unknown>,
  opts: LogOptions,
): AsyncGenerator<LogLine, void, undefined> {
  const { signal } = opts;
  const since = opts.since === undefined ? undefined : typeof opts.since === 'number' ? opts.since : opts.since.getTime();
  const tail = opts.tail === undefined ? undefined : Math.max(0, Math.floor(opts.tail));
  const wanted = opts.streams ?? ['stdout', 'stderr'];
  // Ties in time go to stdout: readers are kept in this order.
  const readers = (['stdout', 'stderr'] as const).filter((s) => wanted.includes(s)).map((s) => new StreamReader(s, files[s]));

  let done = false;
  // Set by whatever should start another round; a round clears it before it reads.
  let changed = false;
  let wake: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const watchers: fs.FSWatcher[] = [];
  const poke = () => {
    changed = true;
    wake?.();
  };
  const onAbort = poke;
  const settle = () => {
    done = true;
    poke();
  };
  finished.then(settle, settle);
  signal?.addEventListener('abort', onAbort);

  try {
    if (signal?.aborted) throw abortError(signal);
    // One macrotask: a `finished` that has settled already has run its handler by then.
    await new Promise<void>((res) => setImmediate(res));
    const exitedAtStart = done;
    for (const r of readers) await r.open();
    if (opts.follow) {
      for (const r of readers) {
        const w = fs.watch(r.path, poke);
        w.on('error', () => undefined);
        watchers.push(w);
      }
    }
    for (const r of readers) {
      let start = 0;
      if (since !== undefined) start = await r.sinceStart(since);
      if (tail !== undefined) start = Math.max(start, await r.tailStart(tail, exitedAtStart));
      await r.seek(start);
    }

    /**
     * Yields the pending lines of all readers in time order, reading each up to its limit.
     * Stops early (returning true) when a head line is held for its index record.
     */
    async function* merged(hold: boolean, final: boolean): AsyncGenerator<LogLine, boolean, undefined> {
      for (;;) {
        if (signal?.aborted) throw abortError(signal);
        let best: StreamReader | undefined;
        let bestTime = 0;
        for (const r of readers) {
          while (r.lines.length === 0 && (await r.readChunk()));
          if (r.lines.length === 0 && final) r.flushPartial();
          if (r.lines.length === 0) continue;
          const t = await r.headTime(hold);
          if (t === undefined) return true;
          if (!best || t < bestTime) {
            best = r;
            bestTime = t;
          }
        }
        if (!best) return false;
        const line = best.lines.shift()!;
        if (since !== undefined && bestTime < since) continue;
        yield { stream: best.stream, time: bestTime, line: line.bytes.toString('utf8') };
      }
    }

    // What exists now: the limits are the sizes seen at open.
    if (tail !== undefined) {
      const last: LogLine[] = [];
      for await (const l of merged(false, exitedAtStart)) {
        last.push(l);
        if (last.length > tail) last.shift();
      }
      yield* last;
    } else {
      yield* merged(false, exitedAtStart);
    }
    if (!opts.follow) return;

    for (;;) {
      // Once the exit was seen, one more round reads what was written before it.
      const final = done;
      changed = false;
      for (const r of readers) await r.refreshSize();
      const held = yield* merged(!final, final);
      if (final) return;
      if (signal?.aborted) throw abortError(signal);
      if (changed) continue;
      const wait = held ? Math.min(...readers.map((r) => r.holdLeft())) : BACKUP_POLL_MS;
      await new Promise<void>((res) => {
        wake = res;
        timer = setTimeout(res, wait);
        timer.unref();
      });
      clearTimeout(timer);
      timer = undefined;
      wake = undefined;
    }
  } finally {
    wake = undefined;
    if (timer) clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    for (const w of watchers) w.close();
    await Promise.allSettled(readers.map((r) => r.close()));
  }
}
