/**
 * Lines of a container's logs with the time each was written, as `docker logs` shows them.
 * Times come from the index the spawner keeps beside each log (see log-index.ts).
 */
import * as fs from 'node:fs';
import { StreamReader } from './log-reader.js';

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

// inotify may coalesce or miss a write on some filesystems; a slow timer backs it up.
const BACKUP_POLL_MS = 500;

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
