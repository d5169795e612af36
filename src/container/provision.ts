/**
 * Provision: carries out a SpawnPlan's side effects, step by named step — name claim, state,
 * id range, storage, cgroups, the spawner's init, the bridge attachment, the exit watch —
 * pushing the undo of each onto a rollback stack. A failure at any step undoes exactly what
 * was done, newest first, and the error is the step's own.
 */
import { join } from 'node:path';
import { RuntimeError, fromNodeError } from '../errors.js';
import type { ProvisionStep, RuntimeParts } from '../parts.js';
import { encodeCreate } from '../plan/encode.js';
import type { SpawnPlan } from '../plan/types.js';
import type { ContainerRecord } from '../state.js';
import { abortError } from './exec.js';
import { openContainerTerminal } from './terminal.js';
import { detachNetwork, forgetInit, killInit } from './teardown.js';
import { ownDeviceNodes } from '../gpu/cdi/nodes.js';

/** Undo actions, run newest first; every one runs even when another fails. */
export class Rollback {
  private readonly undo: { step: string; run: () => unknown }[] = [];

  push(step: string, run: () => unknown): void {
    this.undo.push({ step, run });
  }

  get size(): number {
    return this.undo.length;
  }

  /** Runs the undo actions; returns those that failed (step and error). */
  async unwind(): Promise<{ step: string; error: unknown }[]> {
    const failed: { step: string; error: unknown }[] = [];
    for (const u of this.undo.splice(0).reverse()) {
      try {
        await u.run();
      } catch (error) {
        failed.push({ step: u.step, error });
      }
    }
    return failed;
  }
}

export interface ProvisionInput {
  plan: SpawnPlan;
  /** The configuration as state.json keeps it. */
  config: Record<string, unknown>;
  resources: Record<string, unknown>;
  /** Abandons the create between steps; what was done is undone. */
  signal?: AbortSignal | undefined;
  /** Load the process's seccomp program at the park point (pool.ts: default profile only). */
  preloadSeccomp?: boolean | undefined;
  /** A warm-pool container: the record says so (and which shape) until it is taken. */
  pool?: string | undefined;
  /** Subscribes to the init's exit once it exists; returns the unsubscribe. */
  watch: (rec: ContainerRecord) => Promise<() => void>;
  /** Fds to be the init's stdin, stdout and stderr in place of its log files (an OCI engine's pipes). */
  stdio?: number[] | undefined;
  /** A terminal the caller opened (an OCI engine's, whose master goes to its console socket). */
  terminal?: { slave: number; path: string; release(): void } | undefined;
  /** In place of a new init: a process tree restored from a checkpoint (the spawner's reply). */
  restore?: ((rec: ContainerRecord) => Promise<string[]>) | undefined;
}

export interface Provisioned {
  rec: ContainerRecord;
  unwatch: () => void;
}

export async function provision(parts: RuntimeParts, input: ProvisionInput): Promise<Provisioned> {
  const { plan } = input;
  const rec: ContainerRecord = {
    version: 1,
    id: plan.id,
    name: plan.name,
    state: 'creating',
    config: input.config,
    image: { ref: plan.image.ref, layers: [...plan.image.layers] },
    createdAt: new Date().toISOString(),
    paths: { ...plan.paths },
    cgroupProcs: [],
    ...(plan.cgroupPath !== undefined ? { cgroupPath: plan.cgroupPath } : {}),
    namespaces: [...plan.namespaces],
    resources: { ...input.resources },
    creator: { pid: process.pid, startTime: parts.kernel.processStartTime(process.pid) },
    bootId: parts.kernel.bootId(),
    ...(input.pool ? { pool: input.pool } : {}),
    ...(plan.hooks?.length ? { hooks: plan.hooks } : {}),
    ...(plan.netDevices?.length ? { netDevices: plan.netDevices } : {}),
    ...(plan.intelRdt ? { intelRdt: plan.intelRdt } : {}),
    ...(plan.deviceProcess ? { deviceProcess: plan.deviceProcess } : {}),
  };
  const rollback = new Rollback();
  // While this process provisions it, reconciliation leaves the half-made container alone.
  parts.creating.add(plan.id);
  let unwatch: () => void = () => {};
  let current: ProvisionStep = 'claim-name';
  const step = async <T>(name: ProvisionStep, run: () => T | Promise<T>): Promise<T> => {
    current = name;
    if (input.signal?.aborted) throw abortError(input.signal, `create container ${plan.name}`);
    await parts.faults?.(name);
    return run();
  };
  try {
    await step('claim-name', () => {
      const holder = parts.state.claimName(plan.name, plan.id, rec.creator);
      if (holder !== undefined) {
        throw new RuntimeError(`create container "${plan.name}": the name is in use by ${holder}`, { code: 'EEXIST', step: 'config', containerId: holder });
      }
      rollback.push('claim-name', () => parts.state.releaseName(plan.name, plan.id));
    });
    await step('state', () => {
      rollback.push('state', () => parts.state.remove(plan.id));
      parts.state.create(rec);
    });
    if (plan.userNamespace && !plan.idMaps) {
      await step('id-range', () => {
        const range = parts.idRanges.allocate(plan.id);
        rollback.push('id-range', () => parts.idRanges.release(range, plan.id));
        rec.idRange = range;
        parts.state.save(rec);
      });
    }
    await step('storage', () => {
      rollback.push('storage', () => parts.storage.remove(plan.paths));
      parts.storage.create(plan.paths, plan.userNamespace && rec.idRange ? { owner: rec.idRange.hostId, stagingDirs: plan.userNamespace.stagingDirs } : undefined);
    });
    await step('cgroups', () => {
      rec.cgroupProcs = parts.cgroups.create(plan.id, plan.cgroup, { path: plan.cgroupPath }).procsFiles;
      rollback.push('cgroups', () => parts.cgroups.destroy(plan.id));
    });
    await step('spawn', async () => {
      if (input.restore) {
        rollback.push('spawn', async () => {
          await killInit(parts, rec);
          await forgetInit(parts, rec);
        });
        const reply = await input.restore(rec);
        rec.pid = Number(reply[1]);
        rec.pidStartTime = parts.kernel.processStartTime(rec.pid);
        parts.state.save(rec);
        return;
      }
      // A terminal's relay ends by itself once the init (or the request) lets go of the slave.
      const tty = plan.process.terminal ? (input.terminal ?? (await openContainerTerminal(parts, plan, rec))) : undefined;
      let reply: string[];
      try {
        const deviceNodes = plan.deviceNodes && (await ownDeviceNodes(plan.deviceNodes, join(plan.paths.storageDir, 'devices'), rec.idRange, (f, a) => parts.kernel.runProgram(f, a)));
        const fields = encodeCreate({ ...plan, deviceNodes }, { cgroupProcs: rec.cgroupProcs, idRange: rec.idRange, terminal: tty }, { preloadSeccomp: input.preloadSeccomp });
        // Forgetting is safe before the init exists; the kill needs its pid.
        rollback.push('spawn', async () => {
          await killInit(parts, rec);
          await forgetInit(parts, rec);
        });
        reply = await parts.spawner.request(fields, `create container ${plan.name}`, tty ? [tty.slave, tty.slave, tty.slave] : input.stdio);
      } finally {
        tty?.release();
      }
      rec.pid = Number(reply[1]);
      rec.pidStartTime = parts.kernel.processStartTime(rec.pid);
      parts.state.save(rec);
    });
    if (plan.network.mode === 'bridge') {
      await step('network', async () => {
        const a = await parts.network.add(plan.id, `/proc/${rec.pid}/ns/net`, plan.network.bandwidthMbps);
        rec.network = { ip: a.ip, gateway: a.gateway, result: a.result, bandwidthMbps: plan.network.bandwidthMbps };
        rollback.push('network', () => detachNetwork(parts, rec));
        parts.state.save(rec);
      });
    }
    await step('watch', async () => {
      unwatch = await input.watch(rec);
      rollback.push('watch', () => unwatch());
    });
    return { rec, unwatch };
  } catch (e) {
    const failedAt = current as ProvisionStep;
    // An abort rejects with the caller's own reason.
    const err = e instanceof RuntimeError || input.signal?.aborted ? (e as Error) : fromNodeError(e, failedAt === 'storage' ? 'storage' : 'config', `create container ${plan.name}: step ${failedAt}`);
    if (err instanceof RuntimeError && !(err.code === 'EEXIST' && failedAt === 'claim-name')) err.containerId = plan.id;
    const failed = await rollback.unwind();
    if (failed.length > 0) {
      parts.logger.error(
        { container: plan.id, failed: failed.map((f) => ({ step: f.step, err: f.error })) },
        `create container ${plan.name} failed at ${failedAt}; undoing ${failed.map((f) => f.step).join(', ')} failed too: left for reconciliation`,
      );
    }
    throw err;
  } finally {
    parts.creating.delete(plan.id);
  }
}
