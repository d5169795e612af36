/**
 * The warm pool: per shape (shape.ts), containers created ahead of need and parked at the
 * early park point (after namespaces, mounts, pivot, cgroups). create() takes one whose
 * shape matches the request and applies what differs — the cgroup limits, the name, the
 * configuration; start() then sends the process as for any container — and a background
 * refill replaces it. A pooled container is an ordinary container with a record marked
 * `pool`, owned by the runtime that made it: listing and lookups skip it, reconciliation
 * removes it once its owner is gone, and shrinking or closing the pool removes it
 * completely (init, cgroups, storage, state).
 */
import { performance } from 'node:perf_hooks';
import { ContainerConfig } from '../container/config.js';
import { prepareCreate } from '../container/prepare.js';
import { provision } from '../container/provision.js';
import { prepareContext } from '../container/records.js';
import { encodeStartInput, type StartInput } from '../container/start.js';
import { teardown } from '../container/teardown.js';
import { RuntimeError } from '../errors.js';
import type { RuntimeParts } from '../parts.js';
import type { SpawnPlan } from '../plan/types.js';
import { newContainerId, type ContainerRecord } from '../state.js';
import { shapeKey, shapeLabel } from './shape.js';

/** A shape named by its settings, for callers who do not want to build a whole config. */
export interface PoolShape {
  image: string;
  network?: 'none' | 'bridge' | 'host';
  volumes?: { source: string; target: string; readOnly?: boolean }[];
  readOnlyRoot?: boolean;
  userNamespace?: boolean;
}

export interface PoolShapeStats {
  shape: string;
  image: string;
  size: number;
  ready: number;
  hits: number;
  misses: number;
  refills: number;
  /** Median and last time to create one pooled container, ms. */
  refillMsP50: number | null;
  refillMsLast: number | null;
  /** Memory charged to the ready containers' cgroups, bytes. */
  idleMemoryBytes: number;
  lastError?: string | undefined;
}

export interface PoolStats {
  hits: number;
  misses: number;
  shapes: PoolShapeStats[];
}

export interface Taken {
  rec: ContainerRecord;
  start: StartInput;
}

interface Entry {
  rec: ContainerRecord;
  hostname: string;
  /** Its init loaded the shape's seccomp program at the park point. */
  seccompLoaded: boolean;
  unwatch: () => void;
}

interface Shape {
  key: string;
  label: string;
  image: string;
  template: ContainerConfig;
  size: number;
  ready: Entry[];
  filling: number;
  hits: number;
  misses: number;
  refillMs: number[];
  lastError?: string | undefined;
  work: Promise<void>;
}

const REFILL_DELAY_MS = 10;

function configOf(shape: ContainerConfig | PoolShape): ContainerConfig {
  if (shape instanceof ContainerConfig) return shape;
  const b = ContainerConfig.builder().name('pool').image(shape.image);
  if (shape.network) b.network(shape.network);
  for (const v of shape.volumes ?? []) b.volume(v);
  if (shape.readOnlyRoot !== undefined || shape.userNamespace !== undefined) {
    b.security({ ...(shape.readOnlyRoot !== undefined ? { readonlyRoot: shape.readOnlyRoot } : {}), ...(shape.userNamespace === false ? { userNamespace: false } : {}) } as never);
  }
  return b.build();
}

export class WarmPool {
  private readonly shapes = new Map<string, Shape>();
  private readonly removing = new Set<Promise<void>>();
  private closed = false;

  constructor(private readonly parts: RuntimeParts) {}

  /**
   * Keeps `size` containers of this shape ready (0 removes them); resolves once the pool
   * holds that many, or rejects with the error that stopped the refill.
   */
  async configure(shape: ContainerConfig | PoolShape, opts: { size: number }): Promise<PoolShapeStats> {
    if (this.closed) throw new RuntimeError('pool: the runtime is closed', { code: 'ESTATE', step: 'none' });
    const size = opts.size;
    if (!Number.isInteger(size) || size < 0 || size > 256) {
      throw new RuntimeError(`pool: size: expected an integer in [0, 256], got ${JSON.stringify(size)}`, { code: 'EINVAL', step: 'config' });
    }
    const template = configOf(shape);
    await this.parts.reconcile();
    const plan = prepareCreate(this.pooledConfig(template, newContainerId()), newContainerId(), prepareContext(this.parts));
    const key = shapeKey(plan, template.spec.security === undefined);
    if (!key) throw new RuntimeError('pool: containers with GPUs or devices cannot be pooled (their devices are assigned at create)', { code: 'EUNSUPPORTED', step: 'config' });
    let st = this.shapes.get(key);
    if (!st) {
      st = { key, label: shapeLabel(plan.image.ref, key), image: plan.image.ref, template, size, ready: [], filling: 0, hits: 0, misses: 0, refillMs: [], work: Promise.resolve() };
      this.shapes.set(key, st);
    }
    st.size = size;
    await this.adjust(st);
    if (st.ready.length < st.size && st.lastError) throw new RuntimeError(`pool ${st.label}: ${st.lastError}`, { code: 'ESPAWN', step: 'spawner' });
    return this.shapeStats(st);
  }

  /**
   * A ready container for `plan`'s shape, made into the container `config` asks for, or
   * undefined (no such shape, or none ready: the caller creates one cold).
   */
  async take(plan: SpawnPlan, config: ContainerConfig): Promise<Taken | undefined> {
    if (this.closed || this.shapes.size === 0) return undefined;
    const key = shapeKey(plan, config.spec.security === undefined);
    const st = key ? this.shapes.get(key) : undefined;
    if (!st) return undefined;
    const e = st.ready.shift();
    // The refill waits a moment: the spawner's loop would otherwise set up the replacement
    // while the container just taken is being started.
    this.kickLater(st);
    if (!e) {
      st.misses++;
      return undefined;
    }
    const { rec } = e;
    const parts = this.parts;
    // The process is compiled for this container's id (its default hostname, HOSTNAME).
    let mine: SpawnPlan;
    let start: StartInput;
    try {
      mine = prepareCreate(config, rec.id, prepareContext(parts));
      const hostname = mine.hostname !== e.hostname ? mine.hostname : undefined;
      start = encodeStartInput(rec.id, config.name, { process: mine.process, lastCap: mine.lastCap, hostname, seccompLoaded: e.seccompLoaded });
    } catch (err) {
      st.ready.unshift(e);
      throw err;
    }
    const creator = { pid: process.pid, startTime: parts.kernel.processStartTime(process.pid) };
    const holder = parts.state.claimName(config.name, rec.id, creator);
    if (holder !== undefined) {
      st.ready.unshift(e);
      throw new RuntimeError(`create container "${config.name}": the name is in use by ${holder}`, { code: 'EEXIST', step: 'config', containerId: holder });
    }
    try {
      parts.cgroups.update(rec.id, mine.cgroup);
    } catch (err) {
      parts.state.releaseName(config.name, rec.id);
      void this.discard(e);
      throw err instanceof RuntimeError ? err.wrap(`create container ${config.name}: limits of a pooled container`) : err;
    }
    e.unwatch();
    parts.state.releaseName(rec.name, rec.id);
    rec.name = config.name;
    rec.config = config.toJSON();
    rec.resources = { ...config.spec.resources };
    rec.createdAt = new Date().toISOString();
    rec.creator = creator;
    delete rec.pool;
    parts.state.save(rec);
    st.hits++;
    return { rec, start };
  }

  /** Whether `id` is a ready container of this pool (reconciliation leaves those alone). */
  owns(id: string): boolean {
    for (const st of this.shapes.values()) if (st.ready.some((e) => e.rec.id === id)) return true;
    return false;
  }

  stats(): PoolStats {
    const shapes = [...this.shapes.values()].map((st) => this.shapeStats(st));
    return { hits: shapes.reduce((n, s) => n + s.hits, 0), misses: shapes.reduce((n, s) => n + s.misses, 0), shapes };
  }

  /** Removes every pooled container, waiting for refills in progress; the pool takes no more. */
  async close(): Promise<void> {
    this.closed = true;
    for (const st of this.shapes.values()) st.size = 0;
    await Promise.all([...this.shapes.values()].map((st) => this.adjust(st)));
    await Promise.all([...this.removing]);
  }

  private shapeStats(st: Shape): PoolShapeStats {
    const sorted = [...st.refillMs].sort((a, b) => a - b);
    let idle = 0;
    for (const e of st.ready) {
      try {
        idle += this.parts.cgroups.usage(e.rec.id).memoryBytes;
      } catch {
        // a container going away as it is read
      }
    }
    return {
      shape: st.label,
      image: st.image,
      size: st.size,
      ready: st.ready.length,
      hits: st.hits,
      misses: st.misses,
      refills: st.refillMs.length,
      refillMsP50: sorted.length ? sorted[Math.floor(sorted.length / 2)]! : null,
      refillMsLast: st.refillMs.at(-1) ?? null,
      idleMemoryBytes: idle,
      lastError: st.lastError,
    };
  }

  private pooledConfig(template: ContainerConfig, id: string): ContainerConfig {
    const spec = template.spec;
    return ContainerConfig.fromSpec({ ...spec, name: `pool-${id.slice(0, 12)}`, command: spec.command ?? ['/bin/sh'], args: [] } as never, template.hardwareAffinity()?.spec);
  }

  private kickLater(st: Shape): void {
    setTimeout(() => this.kick(st), REFILL_DELAY_MS).unref();
  }

  /** Starts a refill in the background (errors are kept in the shape's statistics). */
  private kick(st: Shape): void {
    void this.adjust(st).catch(() => undefined);
  }

  /** Grows or shrinks the shape to its size, one container at a time, in order. */
  private adjust(st: Shape): Promise<void> {
    st.work = st.work.then(async () => {
      while (st.ready.length > st.size) await this.discard(st.ready.pop()!);
      st.lastError = undefined;
      while (st.ready.length < st.size) {
        try {
          await this.createOne(st);
        } catch (e) {
          st.lastError = (e as Error).message;
          this.parts.logger.warn({ err: e, shape: st.label }, 'pool refill failed');
          return;
        }
      }
      while (st.ready.length > st.size) await this.discard(st.ready.pop()!);
    });
    return st.work;
  }

  private async createOne(st: Shape): Promise<void> {
    const t0 = performance.now();
    const id = newContainerId();
    const cfg = this.pooledConfig(st.template, id);
    const plan = prepareCreate(cfg, id, prepareContext(this.parts));
    const preload = st.template.spec.security === undefined && !!plan.process.security.seccomp;
    const entry: Partial<Entry> = { hostname: plan.hostname, seccompLoaded: preload };
    const { rec } = await provision(this.parts, {
      preloadSeccomp: preload,
      plan,
      config: cfg.toJSON(),
      resources: { ...cfg.spec.resources },
      pool: st.label,
      watch: async (r) => {
        const unwatch = await this.parts.watchExit(r.id, () => {
          // Killed from outside while it waited: it can serve nobody now.
          const i = st.ready.findIndex((x) => x.rec.id === r.id);
          if (i >= 0) void this.discard(st.ready.splice(i, 1)[0]!);
        });
        entry.unwatch = unwatch;
        return unwatch;
      },
    });
    rec.state = 'created';
    this.parts.state.save(rec);
    entry.rec = rec;
    st.ready.push(entry as Entry);
    st.refillMs.push(performance.now() - t0);
    if (st.refillMs.length > 1000) st.refillMs.splice(0, st.refillMs.length - 1000);
  }

  private discard(e: Entry): Promise<void> {
    e.unwatch();
    const p = teardown(this.parts, e.rec, `remove pooled container ${e.rec.name}`)
      .catch((err: unknown) => this.parts.logger.warn({ err, container: e.rec.id }, 'could not remove a pooled container; left for reconciliation'))
      .finally(() => this.removing.delete(p));
    this.removing.add(p);
    return p;
  }
}
