/**
 * An in-memory spawner: it records every request and plays the spawner's part (create, start,
 * signals, exits, exit.json) without a kernel, so the lifecycle logic above it can be tested
 * without root. Its "init" is this test process (a live pid with a real start time), which it
 * never signals.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { replyError, type Spawner, type SpawnerExit } from '../../src/spawner/client.js';

interface FakeContainer {
  stateDir: string;
  started: boolean;
  exited: boolean;
}

export class FakeSpawner implements Spawner {
  readonly calls: string[][] = [];
  /** Fail the next create at this step: [step, errnoName, errno, path]. */
  failCreate: [string, string, number, string] | undefined;
  /** When true, SIGTERM is ignored (as by a pid 1 without a handler). */
  ignoreTerm = true;
  /** Exit code the workload reports when it "finishes" through finish(). */
  private containers = new Map<string, FakeContainer>();
  private listeners = new Set<(e: SpawnerExit) => void>();
  holds = 0;

  async ensure(): Promise<void> {}

  async request(fields: string[], context: string): Promise<string[]> {
    this.calls.push(fields);
    const [verb, id] = fields;
    const ct = id ? this.containers.get(id) : undefined;
    switch (verb) {
      case 'create': {
        if (this.failCreate) {
          const [step, name, errno, path] = this.failCreate;
          this.failCreate = undefined;
          throw replyError(['error', 'ESPAWN', step, String(errno), name, '', path, ''], context);
        }
        const stateDir = fields[fields.indexOf('state-dir') + 1]!;
        this.containers.set(id!, { stateDir, started: false, exited: false });
        return ['ok', String(process.pid)];
      }
      case 'start':
        if (!ct || ct.exited) throw replyError(['error', 'ESTATE', 'spawner', '3', 'ESRCH', '', '', 'container init has exited'], context);
        ct.started = true;
        return ['ok', String(process.pid)];
      case 'kill': {
        if (!ct || ct.exited) throw replyError(['error', 'ESTATE', 'signal', '3', 'ESRCH', '', '', 'container has exited'], context);
        const sig = Number(fields[2]);
        if (sig === 15 && this.ignoreTerm) return ['ok'];
        setImmediate(() => this.exit(id!, null, sig));
        return ['ok'];
      }
      case 'status':
        return ['ok', ct ? (ct.exited ? 'exited' : ct.started ? 'running' : 'created') : 'unknown'];
      case 'forget':
        this.containers.delete(id!);
        return ['ok'];
      default:
        throw replyError(['error', 'EPROTO', 'spawner', '71', 'EPROTO', '', '', `unknown request "${verb}"`], context);
    }
  }

  /** The workload ends on its own. */
  finish(id: string, exitCode: number): void {
    this.exit(id, exitCode, null);
  }

  private exit(id: string, exitCode: number | null, signal: number | null): void {
    const ct = this.containers.get(id);
    if (!ct || ct.exited) return;
    ct.exited = true;
    const e: SpawnerExit = { id, pid: process.pid, exitCode, signal, finishedAt: Date.now() };
    // As the real spawner: exit.json first, then the event.
    // A state dir removed meanwhile (its record was lost) gets no exit.json, as with the real one.
    if (fs.existsSync(ct.stateDir)) fs.writeFileSync(join(ct.stateDir, 'exit.json'), JSON.stringify({ pid: e.pid, exitCode: exitCode ?? -1, signal: signal ?? 0, finishedAt: e.finishedAt }));
    for (const l of this.listeners) l(e);
  }

  async exec(): Promise<never> {
    throw new Error('the fake spawner does not run processes');
  }

  async onExit(listener: (e: SpawnerExit) => void): Promise<() => void> {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  hold(delta: 1 | -1): void {
    this.holds += delta;
  }

  async shutdown(): Promise<void> {}

  close(): void {
    this.listeners.clear();
  }

  /** How many containers it knows (made and not forgotten). */
  live(): number {
    return this.containers.size;
  }

  /** Whether it knows container `id`. */
  knows(id: string): boolean {
    return this.containers.has(id);
  }

  verbs(): string[] {
    return this.calls.map((c) => c[0]!);
  }
}
