/**
 * The container lifecycle as a table of states and the transitions allowed between them.
 *
 *   creating ─▶ created ─▶ running ⇄ paused
 *      │           │          │        │
 *      ▼           ▼          ▼        ▼
 *   removed ◀── stopped ◀─────┴────────┘
 */
import { RuntimeError } from './errors.js';

export const STATES = ['creating', 'created', 'running', 'paused', 'stopped', 'removed'] as const;
export type ContainerState = (typeof STATES)[number];

export const TRANSITIONS: Readonly<Record<ContainerState, readonly ContainerState[]>> = {
  creating: ['created', 'removed'],
  created: ['running', 'stopped', 'removed'],
  running: ['paused', 'stopped'],
  paused: ['running', 'stopped'],
  stopped: ['removed'],
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

/** Operations allowed per state, for callers that want to ask before acting. */
export const can = {
  start: (s: ContainerState) => s === 'created',
  pause: (s: ContainerState) => s === 'running',
  resume: (s: ContainerState) => s === 'paused',
  kill: (s: ContainerState) => s === 'created' || s === 'running' || s === 'paused',
  exec: (s: ContainerState) => s === 'running',
  remove: (s: ContainerState, force: boolean) => s === 'stopped' || s === 'created' || (force && s !== 'removed'),
};

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
