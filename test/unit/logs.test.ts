/**
 * logLines against hand-made logs and time indexes ("<log>.idx": 16-byte records of two
 * little-endian u64, { time_ms, size_after }) in a tmp dir.
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { followFile } from '../../src/container/log-follow.js';
import { logLines, type LogLine, type LogOptions } from '../../src/container/logs.js';

let dir: string;
let files: { stdout: string; stderr: string };

beforeEach(() => {
  dir = fs.mkdtempSync(join(tmpdir(), 'ss-logs-'));
  files = { stdout: join(dir, 'stdout.log'), stderr: join(dir, 'stderr.log') };
  fs.writeFileSync(files.stdout, '');
  fs.writeFileSync(files.stderr, '');
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Appends `data` to the log and an index record for its new size at `time`. */
function write(stream: 'stdout' | 'stderr', data: string | Buffer, time: number): void {
  fs.appendFileSync(files[stream], data);
  const rec = Buffer.alloc(16);
  rec.writeBigUInt64LE(BigInt(time), 0);
  rec.writeBigUInt64LE(BigInt(fs.statSync(files[stream]).size), 8);
  fs.appendFileSync(`${files[stream]}.idx`, rec);
}

async function collect(opts?: LogOptions, finished: Promise<unknown> = Promise.resolve()): Promise<string[]> {
  const out: string[] = [];
  for await (const l of logLines(files, finished, opts)) out.push(`${l.stream[3]}${l.time}:${l.line}`);
  return out;
}

const T = 1_700_000_000_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Watchers (FSEventWrap) and open fds: what a reader holds while it follows. */
function resources(): { watchers: number; fds: number } {
  return {
    watchers: process.getActiveResourcesInfo().filter((r) => r === 'FSEventWrap').length,
    fds: fs.readdirSync('/proc/self/fd').length,
  };
}

describe('logLines', () => {
  it('merges both streams in time order, stdout first on ties, each in file order', async () => {
    write('stdout', 'o1\n', T + 10);
    write('stderr', 'e1\ne2\n', T + 5);
    write('stdout', 'o2\no3\n', T + 20);
    write('stderr', 'e3\n', T + 20);
    write('stderr', 'e4\n', T + 30);
    expect(await collect()).toEqual([
      `e${T + 5}:e1`,
      `e${T + 5}:e2`,
      `o${T + 10}:o1`,
      `o${T + 20}:o2`,
      `o${T + 20}:o3`,
      `e${T + 20}:e3`,
      `e${T + 30}:e4`,
    ]);
    expect(await collect({ streams: ['stderr'] })).toEqual([`e${T + 5}:e1`, `e${T + 5}:e2`, `e${T + 20}:e3`, `e${T + 30}:e4`]);
  });

  it('times a line by the first record that covers its end, even when one write held several lines or half of one', async () => {
    write('stdout', 'a\nb', T + 1);
    write('stdout', 'c\nd\n', T + 2);
    expect(await collect()).toEqual([`o${T + 1}:a`, `o${T + 2}:bc`, `o${T + 2}:d`]);
  });

  it('keeps only lines written at or after `since`', async () => {
    for (let i = 0; i < 50; ++i) write('stdout', `line ${i}\n`, T + i * 10);
    write('stderr', 'err\n', T + 255);
    expect(await collect({ since: T + 250 })).toEqual([`o${T + 250}:line 25`, `e${T + 255}:err`, ...[...Array(24).keys()].map((k) => `o${T + 260 + k * 10}:line ${k + 26}`)]);
    expect(await collect({ since: new Date(T + 491) })).toEqual([]);
    expect((await collect({ since: T - 1 })).length).toBe(51);
  });

  it('seeks by the index for `since` when a record ends in the middle of a line', async () => {
    write('stdout', 'one\ntw', T + 1);
    write('stdout', 'o\nthree\n', T + 5);
    expect(await collect({ since: T + 2 })).toEqual([`o${T + 5}:two`, `o${T + 5}:three`]);
  });

  it('`tail` keeps the last N lines of both streams, after `since`', async () => {
    for (let i = 0; i < 20; ++i) write(i % 3 === 0 ? 'stderr' : 'stdout', `l${i}\n`, T + i);
    expect(await collect({ tail: 3 })).toEqual([`o${T + 17}:l17`, `e${T + 18}:l18`, `o${T + 19}:l19`]);
    expect(await collect({ tail: 0 })).toEqual([]);
    expect((await collect({ tail: 100 })).length).toBe(20);
    expect(await collect({ tail: 5, since: T + 17 })).toEqual([`o${T + 17}:l17`, `e${T + 18}:l18`, `o${T + 19}:l19`]);
    expect(await collect({ tail: 2, streams: ['stderr'] })).toEqual([`e${T + 15}:l15`, `e${T + 18}:l18`]);
  });

  it('`tail` on a large log reads backwards instead of reading the whole file', async () => {
    const big = Buffer.from(`${'x'.repeat(99)}\n`.repeat(84_000));
    write('stdout', big, T);
    write('stdout', 'last\n', T + 1);
    const fsp = await import('node:fs/promises');
    const st = fs.statSync(files.stdout);
    let read = 0;
    const fh = await fsp.open(files.stdout, 'r');
    const proto = Object.getPrototypeOf(fh) as { read: (...a: unknown[]) => Promise<{ bytesRead: number }> };
    await fh.close();
    const orig = proto.read;
    proto.read = async function (this: unknown, ...a: unknown[]) {
      const r = await orig.apply(this, a);
      read += r.bytesRead;
      return r;
    };
    try {
      expect(await collect({ tail: 2 })).toEqual([`o${T}:${'x'.repeat(99)}`, `o${T + 1}:last`]);
    } finally {
      proto.read = orig;
    }
    expect(read).toBeLessThan(st.size / 8);
  });

  it('yields a final partial line only once the container has exited', async () => {
    write('stdout', 'done\npart', T + 1);
    expect(await collect({}, new Promise(() => {}))).toEqual([`o${T + 1}:done`]);
    expect(await collect({})).toEqual([`o${T + 1}:done`, `o${T + 1}:part`]);
    expect(await collect({ tail: 1 })).toEqual([`o${T + 1}:part`]);
    expect(await collect({ tail: 1 }, new Promise(() => {}))).toEqual([`o${T + 1}:done`]);
  });

  it('splits on newline bytes and decodes each line as UTF-8, binary included', async () => {
    write('stdout', Buffer.concat([Buffer.from('héllo ✓\n'), Buffer.from([0xff, 0x00, 0xfe, 0x0a]), Buffer.from('€'.slice(0, 1)), Buffer.from('\n')]), T);
    expect(await collect()).toEqual([`o${T}:héllo ✓`, `o${T}:\ufffd\u0000\ufffd`, `o${T}:€`]);
  });

  it('times lines the spawner has not indexed by the log file mtime', async () => {
    write('stdout', 'indexed\n', T);
    fs.appendFileSync(files.stdout, 'not yet\n');
    const mtime = Math.floor(fs.statSync(files.stdout).mtimeMs);
    fs.writeFileSync(files.stderr, 'no index at all\n');
    const lines: LogLine[] = [];
    for await (const l of logLines(files, Promise.resolve())) lines.push(l);
    expect(lines.map((l) => l.line)).toEqual(['indexed', 'not yet', 'no index at all']);
    expect(lines[1]!.time).toBe(mtime);
  });

  it('follows appends until `finished` resolves and everything written is read', async () => {
    write('stdout', 'old\n', T);
    let exit!: () => void;
    const finished = new Promise<void>((r) => (exit = r));
    const seen: string[] = [];
    const reading = (async () => {
      for await (const l of logLines(files, finished, { follow: true })) seen.push(`${l.stream}:${l.line}`);
    })();
    await sleep(50);
    expect(seen).toEqual(['stdout:old']);
    write('stdout', 'new 1\n', T + 100);
    write('stderr', 'err 1\n', T + 101);
    await sleep(150);
    expect(seen).toEqual(['stdout:old', 'stdout:new 1', 'stderr:err 1']);
    write('stdout', 'last\nno newline', T + 200);
    exit();
    await reading;
    expect(seen).toEqual(['stdout:old', 'stdout:new 1', 'stderr:err 1', 'stdout:last', 'stdout:no newline']);
  });

  it('while following, gives a line the spawner is about to index a moment for its record', async () => {
    let exit!: () => void;
    const finished = new Promise<void>((r) => (exit = r));
    // The spawner creates the index with the container; a reader waits only where one exists.
    fs.writeFileSync(`${files.stdout}.idx`, '');
    const got = collect({ follow: true }, finished);
    await sleep(30);
    fs.appendFileSync(files.stdout, 'late\n');
    await sleep(5);
    const rec = Buffer.alloc(16);
    rec.writeBigUInt64LE(BigInt(T + 999), 0);
    rec.writeBigUInt64LE(5n, 8);
    fs.appendFileSync(`${files.stdout}.idx`, rec);
    await sleep(60);
    exit();
    expect(await got).toEqual([`o${T + 999}:late`]);
  });

  it('follows with `tail` and `since`: the chosen old lines, then everything new', async () => {
    write('stdout', 'a\nb\nc\n', T);
    let exit!: () => void;
    const finished = new Promise<void>((r) => (exit = r));
    const got = (async () => collect({ follow: true, tail: 1 }, finished))();
    await sleep(30);
    write('stdout', 'd\n', T + 5);
    await sleep(30);
    exit();
    expect(await got).toEqual([`o${T}:c`, `o${T + 5}:d`]);
  });

  it('ends with an AbortError when its signal aborts, and releases its watchers', async () => {
    const before = resources();
    write('stdout', 'x\n', T);
    const ac = new AbortController();
    const seen: string[] = [];
    const reading = (async () => {
      for await (const l of logLines(files, new Promise(() => {}), { follow: true, signal: ac.signal })) seen.push(l.line);
    })();
    await sleep(50);
    const during = resources();
    expect(during.watchers).toBe(before.watchers + 2);
    expect(during.fds).toBeGreaterThanOrEqual(before.fds + 3); // both logs and stdout's index
    ac.abort();
    await expect(reading).rejects.toMatchObject({ name: 'AbortError' });
    expect(seen).toEqual(['x']);
    await sleep(10);
    expect(resources()).toEqual(before);

    await expect(collect({ signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('releases every fd, watcher and timer when the loop breaks out', async () => {
    const before = resources();
    write('stdout', 'one\ntwo\n', T);
    for await (const l of logLines(files, new Promise(() => {}), { follow: true })) {
      expect(l.line).toBe('one');
      expect(resources().watchers).toBe(before.watchers + 2);
      break;
    }
    // And while it waits for more.
    const it = logLines(files, new Promise(() => {}), { follow: true, tail: 0 });
    const next = it.next();
    await sleep(30);
    write('stdout', 'three\n', T + 1);
    expect((await next).value).toMatchObject({ line: 'three' });
    await it.return!();
    await sleep(10);
    expect(resources()).toEqual(before);
  });

  it('leaves followFile as it was', async () => {
    fs.writeFileSync(files.stdout, 'raw\n');
    const chunks: Buffer[] = [];
    for await (const c of followFile(files.stdout, Promise.resolve())) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('raw\n');
  });
});
