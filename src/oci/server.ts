#!/usr/bin/env node
/**
 * The resident OCI server behind the native front end (native/oci/front.c): one per --root,
 * started by the first call, ending after an idle period. Engines run the runtime binary
 * several times per container; a Node start costs about 70 ms, so Node starts once here and
 * each call is one message on `<root>/oci.sock`.
 *
 * A call: the front end sends ["run", pid, cwd, envCount, ...env, ...argv]; the server runs
 * it (cli.ts run) and answers with frames: ["out", text] and ["err", text] for its output;
 * ["keeper-wait", pid, exitJson] and ["keeper-exec", socket, frame, detach, ttyPath] asking
 * the front end to start a keeper (which must descend from the process the engine ran),
 * answered ["pid", N] / ["status", pid, text]; then ["exit", code], or ["exit-keeper"]: the
 * front end exits as its exec keeper does. The caller's stdio is opened through
 * /proc/<pid>/fd (engines pass pipes), so the container gets the engine's own pipes.
 */
import * as fs from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { encodeFrame } from '../spawner/wire.js';
import { run } from './cli.js';
import { OciEvolution } from './evolution.js';
import type { ExecKeeper, Keepers } from './keepers.js';

const IDLE_MS = Number(process.env.STRATOSWARM_OCI_SERVER_IDLE_MS ?? 60_000);

/** Reads frames (u32 LE length, then fields of u32 LE length and bytes) off a socket. */
function frames(sock: Socket, onFrame: (f: Buffer[]) => void): void {
  let buf = Buffer.alloc(0);
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32LE(0)) {
      const len = buf.readUInt32LE(0);
      const body = buf.subarray(4, 4 + len);
      buf = buf.subarray(4 + len);
      const fields: Buffer[] = [];
      for (let off = 0; off + 4 <= body.length; ) {
        const l = body.readUInt32LE(off);
        fields.push(body.subarray(off + 4, off + 4 + l));
        off += 4 + l;
      }
      onFrame(fields);
    }
  });
}

function openStdio(pid: number): number[] {
  // The engine's pipes, as the caller holds them: a new descriptor of the same pipe or file.
  return [0, 1, 2].map((n) => {
    try {
      return fs.openSync(`/proc/${pid}/fd/${n}`, n === 0 ? 'r' : 'a');
    } catch {
      return fs.openSync('/dev/null', n === 0 ? 'r' : 'a');
    }
  });
}

/** The evolving containers of this server's root (set in main). */
let evolution: OciEvolution | undefined;
/** Re-arms the idle exit (set in main). */
let rearm: () => void = () => undefined;
/** How often the server looks whether its evolving containers still run. */
const PRUNE_MS = 2000;

function serve(sock: Socket): void {
  const pending: ((f: Buffer[]) => void)[] = [];
  const send = (fields: (string | Buffer)[]) => sock.write(encodeFrame(fields));
  const ask = (fields: (string | Buffer)[]) =>
    new Promise<Buffer[]>((resolve) => {
      pending.push(resolve);
      send(fields);
    });
  let started = false;
  frames(sock, (f) => {
    if (started) {
      pending.shift()?.(f);
      return;
    }
    started = true;
    void handle(f.map(String), ask, send).finally(() => sock.end());
  });
  sock.on('error', () => undefined);
}

async function handle(f: string[], ask: (fields: (string | Buffer)[]) => Promise<Buffer[]>, send: (fields: (string | Buffer)[]) => void): Promise<void> {
  if (f[0] !== 'run') return void send(['exit', '1']);
  const pid = Number(f[1]);
  const cwd = f[2]!;
  const nEnv = Number(f[3]);
  const env = Object.fromEntries(f.slice(4, 4 + nEnv).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
  const argv = f.slice(4 + nEnv);
  // A container that evolves was started by a call that is not this server's (the Node CLI).
  if (argv.at(-1) === 'server-scan') {
    await evolution?.scan().catch(() => undefined);
    rearm();
    return void send(['exit', '0']);
  }
  if (argv.at(-1) === 'server-stop') {
    send(['exit', '0']);
    setImmediate(() => process.exit(0));
    return;
  }
  let stdio: number[] | undefined;
  let execKeeper = false;
  const keepers: Keepers = {
    async wait(target, exitJson) {
      const r = await ask(['keeper-wait', String(target), exitJson]);
      return Number(String(r[1]));
    },
    async exec(socket, frame, _fds, detach, tty) {
      const r = await ask(['keeper-exec', socket, frame, detach ? '1' : '0', tty ?? '']);
      execKeeper = !detach;
      const k: ExecKeeper = { pid: Number(String(r[1])), status: String(r[2] ?? '').trim(), exited: Promise.resolve(0) };
      return k;
    },
  };
  const io = {
    stdout: (t: string) => send(['out', t]),
    stderr: (t: string) => send(['err', t]),
    get stdio() {
      stdio ??= openStdio(pid);
      return stdio;
    },
    env,
    cwd,
    keepers,
    readStdin: () => fs.readFileSync(`/proc/${pid}/fd/0`, 'utf8'),
    evolution: { changed: () => void (changed = true) },
  };
  let changed = false;
  let code: number;
  try {
    code = await run(argv, io);
  } catch (e) {
    send(['err', `stratoswarm-oci: ${(e as Error).message}\n`]);
    code = 1;
  } finally {
    for (const fd of stdio ?? []) fs.closeSync(fd);
  }
  // Not detached, and the exec started: the front end's exit is its keeper's.
  send(execKeeper && code === 0 ? ['exit-keeper'] : ['exit', String(code)]);
  // A start may have begun an evolving container, a delete ended one.
  if (changed) {
    await evolution?.scan().catch(() => undefined);
    rearm();
  }
}

function main(): void {
  const root = process.argv[2];
  if (!root) {
    process.stderr.write('usage: server.js ROOT\n');
    process.exit(2);
  }
  fs.mkdirSync(root, { recursive: true, mode: 0o700 });
  const sockPath = join(root, 'oci.sock');
  // The server's stdio goes nowhere (it outlives the call that started it): what kills it is
  // written to <root>/oci-server.log.
  const died = (e: unknown) => {
    try {
      fs.appendFileSync(join(root, 'oci-server.log'), `${new Date().toISOString()} ${(e as Error)?.stack ?? String(e)}\n`);
    } finally {
      process.exit(1);
    }
  };
  process.on('uncaughtException', died);
  process.on('unhandledRejection', died);
  let idle: NodeJS.Timeout | undefined;
  let active = 0;
  evolution = new OciEvolution(root);
  // While a container evolves here the server stays: its generations run in this process.
  const arm = () => {
    clearTimeout(idle);
    if (active === 0 && evolution!.active === 0) idle = setTimeout(() => process.exit(0), IDLE_MS);
  };
  rearm = arm;
  // Between calls, only an evolving container's own exit changes anything: its status is looked at.
  setInterval(() => {
    void evolution!.prune().then(arm, () => undefined);
  }, PRUNE_MS).unref();
  const server = createServer((sock) => {
    active++;
    clearTimeout(idle);
    sock.on('close', () => {
      active--;
      arm();
    });
    serve(sock);
  });
  // One server per root: a socket that answers is another server's, and this one leaves; one
  // that does not is stale, removed, and bound again.
  let retried = false;
  server.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EADDRINUSE' && !retried) {
      retried = true;
      const probe = connect(sockPath);
      probe.once('connect', () => process.exit(0));
      probe.once('error', () => {
        fs.rmSync(sockPath, { force: true });
        server.listen(sockPath);
      });
      return;
    }
    process.stderr.write(`stratoswarm-oci server: ${e.message}\n`);
    process.exit(1);
  });
  server.listen(sockPath, () => {
    fs.chmodSync(sockPath, 0o600);
    // Containers that were evolving when a server of this root last ended go on from their state.
    void evolution!.scan().then(arm, () => arm());
  });
}

main();
