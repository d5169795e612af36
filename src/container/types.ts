import type { ContainerGpuUsage } from '../gpu/accounting.js';
import type { AutoscaleEvent } from './autoscale.js';
/** The types the Container API takes and returns. */
import type { GenerationRecord } from '../evolution/records.js';
import type { CgroupStats } from '../isolation/backend.js';
import type { NetDevCounters } from '../kernel/host.js';
import type { ContainerState } from '../lifecycle.js';
import type { ResourceSpec } from './config.js';
import type { TerminalSession } from './terminal.js';

export interface ContainerStatus {
  id: string;
  name: string;
  state: ContainerState;
  pid: number | undefined;
  exitCode: number | null | undefined;
  signal: string | null | undefined;
  oomKilled: boolean;
  createdAt: Date;
  startedAt: Date | undefined;
  finishedAt: Date | undefined;
  /** Restarts under the container's restart policy. */
  restartCount: number;
}

export interface ExitStatus {
  exitCode: number | null;
  /** The signal that ended the process, by name ("SIGKILL"), or null. */
  signal: string | null;
  oomKilled: boolean;
}

export interface StateChange {
  id: string;
  from: ContainerState;
  to: ContainerState;
}

/** The events a Container emits, with their arguments. */
export interface ContainerEvents {
  state: [StateChange];
  exit: [ExitStatus];
  oom: [{ id: string }];
  generation: [GenerationRecord];
  evolutionError: [Error];
  /** The restart policy brought the container back (count: restarts so far). */
  restart: [{ id: string; count: number; attempt: number }];
  /** The restart retries are spent: the container stays stopped. */
  restartsExhausted: [{ id: string; count: number }];
  /** A limit changed in response to pressure (autoscale). */
  autoscale: [AutoscaleEvent];
}

/** One event of any container, as Runtime.events() yields them. */
export type RuntimeEvent = { [K in keyof ContainerEvents]: { type: K; id: string; name: string; data: ContainerEvents[K][0] } }[keyof ContainerEvents];

export interface OperationOptions {
  /** Abandons the operation: it rejects with an AbortError and what it started is undone. */
  signal?: AbortSignal | undefined;
}

export interface ExecOptions extends OperationOptions {
  env?: Record<string, string>;
  workingDir?: string;
  user?: string | number;
  stdin?: string | Buffer;
  /** Kill the process (SIGKILL) if it runs longer than this. */
  timeoutMs?: number;
  /**
   * execStream only: a pseudo-terminal as the process's stdio (`ExecProcess.terminal`); give
   * `{ cols, rows }` for the window size it starts with.
   */
  terminal?: boolean | { cols: number; rows: number };
}

export interface ExecResult {
  pid: number;
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** An exec whose stdio are Node streams (binary-safe): write stdin, read stdout and stderr. */
export interface ExecProcess {
  pid: number;
  stdin: NodeJS.WritableStream & { end(chunk?: unknown): unknown };
  stdout: NodeJS.ReadableStream;
  stderr: NodeJS.ReadableStream;
  /** Resolves when the process has exited. */
  exit: Promise<{ exitCode: number | null; signal: string | null }>;
  /** Sends a signal to the process (through its pidfd: never to a reused pid). */
  kill(signal?: string | number): Promise<void>;
  /**
   * With `terminal: true`: the terminal (resize, detach). Its stream is also `stdin` and
   * `stdout`; `stderr` is empty, a terminal has one output.
   */
  terminal?: TerminalSession;
}

/** Resource settings for update(): numbers set a limit, null removes it. */
export type ResourceUpdate = { [K in keyof ResourceSpec]?: ResourceSpec[K] | null };

export interface ContainerStats extends CgroupStats {
  /** When the sample was taken (ms since the epoch). */
  timestamp: number;
  /** Average cores used since the previous stats() call (undefined on the first). */
  cpuCores?: number;
  network?: NetDevCounters;
  /** Per GPU it holds: its processes' device memory and utilisation (NVML process accounting). */
  gpu?: ContainerGpuUsage[];
}

export interface EvolutionOptions {
  /**
   * The workload's own cumulative work counter (items processed, requests served...). With
   * it, a generation's throughput is work per second; without, CPU-seconds per second.
   */
  workDone?: () => number | Promise<number>;
  /** Start over instead of continuing from the state persisted with the container. */
  restart?: boolean;
}
