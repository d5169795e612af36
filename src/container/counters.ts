/**
 * A container's cgroup counter files, opened once and shared by what samples them (evolution,
 * autoscale): both tick on the same grid of the same scheduler, and their reads in one tick
 * become one entry of the batched native read (cgroup-counters.ts) instead of two.
 */
import { counterBatch, type CgroupCounters, type ContainerCounters } from '../evolution/cgroup-counters.js';
import type { ContainerContext } from './context.js';

interface Shared {
  counters: ContainerCounters;
  users: number;
  /** A read asked for and not yet answered: a second reader in the same turn shares it. */
  pending: Promise<CgroupCounters> | undefined;
}

const byRecord = new WeakMap<object, Shared>();

export interface CounterLease {
  read(): Promise<CgroupCounters>;
  release(): void;
}

/** The container's counters (opened on first use); release() closes them once every user has. */
export function leaseCounters(ctx: Pick<ContainerContext, 'parts' | 'rec'>): CounterLease {
  const { parts, rec } = ctx;
  let s = byRecord.get(rec);
  if (!s) {
    const dirs = parts.cgroups.dirs(rec.id);
    const counters = counterBatch(parts.kernel).open(parts.cgroups.layout, (mount) => dirs.find((d) => d.startsWith(`${mount}/`))!);
    s = { counters, users: 0, pending: undefined };
    byRecord.set(rec, s);
  }
  const shared = s;
  shared.users++;
  let released = false;
  return {
    read: () => {
      if (shared.pending) return shared.pending;
      const p = shared.counters.read();
      shared.pending = p;
      const clear = () => {
        if (shared.pending === p) shared.pending = undefined;
      };
      p.then(clear, clear);
      return p;
    },
    release: () => {
      if (released) return;
      released = true;
      if (--shared.users > 0) return;
      shared.counters.close();
      if (byRecord.get(rec) === shared) byRecord.delete(rec);
    },
  };
}
