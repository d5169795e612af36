/**
 * What CDI asks of a container once its init exists and before its command runs: host
 * network interfaces moved into its network namespace, the resctrl group joined, then the
 * createRuntime and createContainer hooks. A cold create and a restart's respawn do the same;
 * removal undoes the first two.
 */
import * as fs from 'node:fs';
import { attachNetDevices, detachNetDevices, type NetHost, type PlanNetDevice } from '../gpu/cdi/netdev.js';
import { joinRdt, leaveRdt, type PlanRdt } from '../gpu/cdi/rdt.js';
import type { CdiHook } from '../gpu/cdi/spec.js';
import { runHooks } from '../gpu/hooks.js';
import type { RuntimeParts } from '../parts.js';
import { isSameProcess, type ContainerRecord } from '../state.js';

export interface InitEdits {
  netDevices?: PlanNetDevice[] | undefined;
  intelRdt?: PlanRdt | undefined;
  hooks?: CdiHook[] | undefined;
}

const run = (parts: RuntimeParts) => (file: string, args: readonly string[]) => parts.kernel.runProgram(file, args);

function netHost(): NetHost {
  return {
    has: (name) => fs.existsSync(`/sys/class/net/${name}`),
    ifindex: (name) => {
      try {
        return Number(fs.readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8').trim());
      } catch {
        return undefined;
      }
    },
  };
}

/** Applies `edits` to the new init of `rec`; throws at the first failure (the caller undoes the container). */
export async function setUpInit(parts: RuntimeParts, rec: ContainerRecord, edits: InitEdits): Promise<void> {
  if (edits.netDevices?.length) {
    // The record keeps the interface indexes, so a removal or a restart finds them again.
    for (const d of edits.netDevices) d.ifindex ??= rec.netDevices?.find((x) => x.hostInterfaceName === d.hostInterfaceName)?.ifindex;
    rec.netDevices = edits.netDevices;
    try {
      await attachNetDevices(edits.netDevices, rec.pid!, run(parts), netHost());
    } finally {
      parts.state.save(rec);
    }
  }
  if (edits.intelRdt) joinRdt(edits.intelRdt, rec.pid!);
  const state = { id: rec.id, pid: rec.pid, status: 'created' as const, bundle: rec.paths.storageDir };
  await runHooks(edits.hooks, 'createRuntime', state);
  await runHooks(edits.hooks, 'createContainer', state);
}

/** Before the init is killed: its network interfaces go back to the host. */
export async function releaseNetDevices(parts: RuntimeParts, rec: ContainerRecord): Promise<void> {
  if (!rec.netDevices?.length) return;
  const alive = !!rec.pid && isSameProcess(parts.kernel, rec.pid, rec.pidStartTime);
  await detachNetDevices(rec.netDevices, alive ? rec.pid : undefined, run(parts), netHost());
}

/** After it is gone: a resctrl group made for it alone goes too. */
export function releaseRdt(rec: ContainerRecord): void {
  leaveRdt(rec.intelRdt);
}
