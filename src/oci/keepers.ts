/**
 * Starting keepers (native/oci/keeper.c): the processes an engine waits for. They must be
 * descendants of the process the engine ran, so that they are reparented to the engine when
 * it exits: run directly, this Node process starts them; behind the native front end, the
 * front end does (the resident server asks it to, see server.ts).
 */
import { spawn } from 'node:child_process';
import { RuntimeError } from '../errors.js';
import { keeperPath } from '../kernel/native.js';

export interface ExecKeeper {
  pid: number;
  /** The keeper's report: "pid N", or "reply<0x1f>fields..." for the spawner's error. */
  status: string;
  /** Its exit code (the exec'd process's). */
  exited: Promise<number>;
}

export interface Keepers {
  /** A keeper that ends as process `pid` does (its exit record at `exitJson`); its pid. */
  wait(pid: number, exitJson: string): Promise<number>;
  /** A keeper that sends the encoded exec `frame` to the spawner at `socket` with `stdio` (a terminal's slave: `tty` is its path). */
  exec(socket: string, frame: Buffer, stdio: number[], detach: boolean, tty?: string): Promise<ExecKeeper>;
}

export const localKeepers: Keepers = {
  async wait(pid, exitJson) {
    const child = spawn(keeperPath(), ['wait', String(pid), exitJson], { detached: true, stdio: 'ignore' });
    child.unref();
    if (child.pid === undefined) throw new RuntimeError('start the OCI keeper: spawn failed', { code: 'ELOAD', step: 'config' });
    return child.pid;
  },
  async exec(socket, frame, stdio, detach) {
    const child = spawn(keeperPath(), ['exec', socket], { detached: detach, stdio: [stdio[0]!, stdio[1]!, stdio[2]!, 'pipe', 'pipe'] });
    const [, , , input, status] = child.stdio as unknown as [null, null, null, NodeJS.WritableStream, NodeJS.ReadableStream];
    const exited = new Promise<number>((resolve) => child.on('exit', (code, sig) => resolve(code ?? 128 + (sig === 'SIGKILL' ? 9 : 15))));
    input.end(frame);
    let text = '';
    for await (const chunk of status) text += String(chunk);
    if (detach) child.unref();
    return { pid: child.pid ?? 0, status: text.trim(), exited };
  },
};
