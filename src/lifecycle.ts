/**
 * The container lifecycle as a table of states and the transitions allowed between them.
 *
 *   creating ─▶ created ─▶ running ⇄ paused
 *      │           │        ▲ │        │
 *      ▼           ▼ restart│ ▼        ▼
 *   removed ◀── stopped ────┘◀─────────┘
 */
import { RuntimeError } from './errors.js';

export const STATES = ['creating', 'created', 'running', 'paused', 'stopped', 'removed'] as const;
export type ContainerState = (typeof STATES)[number];

export const TRANSITIONS: Readonly<Record<ContainerState, readonly ContainerState[]>> = {
  creating: ['created', 'removed'],
  created: ['running', 'stopped', 'removed'],
  running: ['paused', 'stopped'],
  paused: ['running', 'stopped'],
  // A restart policy brings a stopped container back with a new init.
  stopped: ['running', 'removed'],
  removed: [],
};

export function canTransition(from: ContainerState, to: ContainerState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Throws a RuntimeError naming both states when `op` would move `from` to `to` illegally. */
export function assertTransition(id: string, op: string, from: ContainerState, to: ContainerState): void {
  if (!canTransition(from, to)) {
    throw new RuntimeError(`${op} container ${id}: cannot go from ${from} to ${to}`, {
      code: 'ESTATE',
      step: 'state',
      containerId: id,
    });
  }
}

/**
 * Each operation: the states it starts from and the state it leads to. A transition the
 * table allows can still be the wrong operation (resume from created is not start).
 */
export const OPERATIONS = {
  start: { from: ['created'], to: 'running' },
  pause: { from: ['running'], to: 'paused' },
  resume: { from: ['paused'], to: 'running' },
  stop: { from: ['created', 'running', 'paused'], to: 'stopped' },
  remove: { from: ['created', 'stopped'], to: 'removed' },
} as const satisfies Record<string, { from: readonly ContainerState[]; to: ContainerState }>;
export type Operation = keyof typeof OPERATIONS;

/** Throws a RuntimeError naming both states when `op` is not allowed in state `from`. */
export function assertOperation(id: string, op: Operation, from: ContainerState): void {
  const rule = OPERATIONS[op];
  if (!(rule.from as readonly ContainerState[]).includes(from)) {
    throw new RuntimeError(`${op} container ${id}: cannot go from ${from} to ${rule.to}`, {
      code: 'ESTATE',
      step: 'state',
      containerId: id,
    });
  }
}

/**
 * Serializes operations on one container: each runs after the previous one settles, so two
 * concurrent start() calls become one start and one clear ESTATE error.
 */
export class OperationQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(op: () => Promise<T>): Promise<T> {
    const next = this.tail.then(op, op);
    this.tail = next.catch(() => undefined);
    return next;
  }
}
