import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { DetachFilter, runTerminal } from '../../src/cli/terminal.js';
import type { TerminalSession } from '../../src/index.js';

const P = '\x10';
const Q = '\x11';

describe('the detach keys (ctrl-p ctrl-q)', () => {
  it('detach at the sequence, passing what came before it and dropping what follows', () => {
    const f = new DetachFilter();
    expect(f.push(Buffer.from(`ls${P}${Q}rest`))).toEqual({ pass: Buffer.from('ls'), detach: true });
  });

  it('hold a ctrl-p at the end of a chunk until the next one decides', () => {
    const f = new DetachFilter();
    expect(f.push(Buffer.from(`a${P}`))).toEqual({ pass: Buffer.from('a'), detach: false });
    expect(f.push(Buffer.from(Q))).toEqual({ pass: Buffer.alloc(0), detach: true });
    const g = new DetachFilter();
    g.push(Buffer.from(P));
    // Not followed by ctrl-q: the held ctrl-p is typed after all.
    expect(g.push(Buffer.from('x'))).toEqual({ pass: Buffer.from(`${P}x`), detach: false });
  });

  it('a doubled ctrl-p passes one and keeps watching', () => {
    const f = new DetachFilter();
    expect(f.push(Buffer.from(`${P}${P}${Q}`))).toEqual({ pass: Buffer.from(P), detach: true });
  });
});

function fakeSession() {
  const stream = new PassThrough();
  const typed: Buffer[] = [];
  const sizes: [number, number][] = [];
  let detached = false;
  const input = new PassThrough();
  input.on('data', (d: Buffer) => typed.push(d));
  const duplex = Object.assign(stream, { write: (d: Buffer) => input.write(d) });
  const session: TerminalSession = {
    stream: duplex as unknown as TerminalSession['stream'],
    resize: (c, r) => void sizes.push([c, r]),
    detach: () => void (detached = true),
  };
  return { session, stream, typed, sizes, detached: () => detached };
}

function fakeIo(tty: boolean) {
  const stdin = Object.assign(new PassThrough(), { isTTY: tty, setRawMode: (on: boolean) => ((stdin as unknown as { raw: boolean }).raw = on) }) as unknown as NodeJS.ReadStream & { raw?: boolean };
  const out: Buffer[] = [];
  const stdout = Object.assign(new PassThrough(), { isTTY: tty, columns: 120, rows: 40 }) as unknown as NodeJS.WriteStream;
  (stdout as unknown as PassThrough).on('data', (d: Buffer) => out.push(d));
  return { stdin, stdout, out };
}

describe('runTerminal', () => {
  it('sends our size, types our input, shows the output, and ends with the terminal', async () => {
    const s = fakeSession();
    const io = fakeIo(true);
    const done = runTerminal(s.session, { interactive: true }, io);
    expect(s.sizes).toEqual([[120, 40]]);
    expect(io.stdin.raw).toBe(true);
    (io.stdin as unknown as PassThrough).write('echo hi\r');
    s.stream.push(Buffer.from('hi\r\n'));
    (io.stdout as unknown as { columns: number }).columns = 90;
    io.stdout.emit('resize');
    await new Promise((r) => setImmediate(r));
    s.stream.push(null);
    expect(await done).toBe('ended');
    expect(Buffer.concat(s.typed).toString()).toBe('echo hi\r');
    expect(Buffer.concat(io.out).toString()).toBe('hi\r\n');
    expect(s.sizes).toEqual([[120, 40], [90, 40]]);
    expect(io.stdin.raw).toBe(false);
    expect(s.detached()).toBe(false);
  });

  it('detaches on ctrl-p ctrl-q and leaves the terminal alone', async () => {
    const s = fakeSession();
    const io = fakeIo(true);
    const done = runTerminal(s.session, { interactive: true }, io);
    (io.stdin as unknown as PassThrough).write(`x${P}${Q}`);
    expect(await done).toBe('detached');
    expect(s.detached()).toBe(true);
    expect(Buffer.concat(s.typed).toString()).toBe('x');
  });

  it('without -i our input is not typed in, and without a terminal no size is sent', async () => {
    const s = fakeSession();
    const io = fakeIo(false);
    const done = runTerminal(s.session, { interactive: false }, io);
    (io.stdin as unknown as PassThrough).write('ignored');
    s.stream.push(null);
    expect(await done).toBe('ended');
    expect(s.typed).toEqual([]);
    expect(s.sizes).toEqual([]);
  });
});
