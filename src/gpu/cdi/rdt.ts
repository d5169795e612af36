/**
 * CDI `intelRdt`: the container's processes join a resctrl group (Intel RDT / AMD PQoS class
 * of service), as the OCI runtime specification's `linux.intelRdt` has it. The group is
 * `closID`, or one named after the container when the spec gives none (then removed with the
 * container); its `schemata` file gets the spec's L3 cache and memory bandwidth schemata,
 * and the init's pid goes into its `tasks` file, which its children inherit. Without resctrl
 * mounted there is nothing to join: an error naming the field, before anything exists.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { RuntimeError } from '../../errors.js';
import type { CdiIntelRdt } from './spec.js';

export const RESCTRL_MOUNTINFO = '/proc/self/mountinfo';

/** Where resctrl is mounted, from mountinfo text; undefined when it is not. */
export function resctrlRoot(mountinfo: string): string | undefined {
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (post?.split(' ')[0] === 'resctrl') return pre!.split(' ')[4]?.replace(/\\040/g, ' ');
  }
  return undefined;
}

export interface PlanRdt {
  /** The resctrl group's directory. */
  group: string;
  /** Made for this container alone (no closID): removed with it. */
  own: boolean;
  schemata: string[];
  /** Where the spec set it, for errors. */
  origin: string;
}

/** The group a container joins; throws naming the field when resctrl is not mounted. */
export function planRdt(rdt: CdiIntelRdt, origin: string, containerId: string, mountinfo: string): PlanRdt {
  const root = resctrlRoot(mountinfo);
  if (!root) {
    throw new RuntimeError(`devices: ${origin}: intelRdt${rdt.closID ? '.closID' : ''}: resctrl is not mounted (no resctrl filesystem in ${RESCTRL_MOUNTINFO}; mount -t resctrl resctrl /sys/fs/resctrl on a CPU with RDT)`, { code: 'EUNSUPPORTED', step: 'config' });
  }
  const schemata = [rdt.l3CacheSchema, rdt.memBwSchema, ...(rdt.schemata ?? [])].filter((s): s is string => !!s).flatMap((s) => s.split('\n')).filter(Boolean);
  return { group: join(root, rdt.closID ?? containerId), own: !rdt.closID, schemata, origin };
}

/** Makes the group when missing, writes its schemata and puts `pid` in it. */
export function joinRdt(p: PlanRdt, pid: number): void {
  const fail = (what: string, e: unknown) => new RuntimeError(`devices: ${p.origin}: intelRdt: ${what}: ${(e as Error).message}`, { code: 'ESYSCALL', step: 'config', path: p.group });
  try {
    fs.mkdirSync(p.group, { recursive: false });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw fail(`cannot make ${p.group}`, e);
  }
  for (const line of p.schemata) {
    try {
      fs.writeFileSync(join(p.group, 'schemata'), `${line}\n`);
    } catch (e) {
      throw fail(`${join(p.group, 'schemata')} refused "${line}"`, e);
    }
  }
  try {
    fs.writeFileSync(join(p.group, 'tasks'), `${pid}\n`);
  } catch (e) {
    throw fail(`cannot add pid ${pid} to ${join(p.group, 'tasks')}`, e);
  }
}

/** Removes a group made for the container alone (its tasks are gone with it). */
export function leaveRdt(p: PlanRdt | undefined): void {
  if (!p?.own) return;
  try {
    fs.rmdirSync(p.group);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}
