/**
 * Container edits, merged: the device nodes to bind (type, major and minor taken from the
 * host node where the spec leaves them out), the device-cgroup rules that allow exactly
 * those nodes, bind mounts, environment, hooks and additional groups. Two edits that want
 * different things at one place (a node path, a mount target, a variable) are a conflict and
 * an error naming both origins, never a silent override.
 */
import * as fs from 'node:fs';
import { RuntimeError } from '../../errors.js';
import type { DeviceRule } from '../../isolation/resources.js';
import type { CdiEditSource } from './registry.js';
import type { CdiHook, CdiIntelRdt, CdiNetDevice } from './spec.js';

export interface HostNode {
  type: 'c' | 'b' | 'p';
  major: number;
  minor: number;
}

/** The host node at `path` (undefined when absent; a regular file or directory is `undefined` type). */
export type StatNode = (path: string) => HostNode | { type: 'other' } | undefined;

/** Linux's dev_t split (glibc's gnu_dev_major/minor), as Node reports rdev as one number. */
export function splitDev(rdev: number): { major: number; minor: number } {
  const d = BigInt(rdev);
  const major = Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
  const minor = Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
  return { major, minor };
}

export const statHostNode: StatNode = (path) => {
  let st: fs.Stats;
  try {
    st = fs.statSync(path);
  } catch {
    return undefined;
  }
  const type = st.isCharacterDevice() ? 'c' : st.isBlockDevice() ? 'b' : st.isFIFO() ? 'p' : undefined;
  if (!type) return { type: 'other' };
  return { type, ...splitDev(st.rdev) };
};

export interface CdiApplied {
  /** Host node → path in the container, bound read-write (the cgroup rule decides access). */
  deviceNodes: { hostPath: string; path: string; type: 'c' | 'b' | 'p'; major: number; minor: number; fileMode?: number | undefined; uid?: number | undefined; gid?: number | undefined }[];
  rules: DeviceRule[];
  mounts: { source: string; target: string; readOnly: boolean }[];
  /** NAME=value, in order. */
  env: string[];
  hooks: CdiHook[];
  additionalGids: number[];
  netDevices: (CdiNetDevice & { origin: string })[];
  /** With the origin of the edit that set it, for errors. */
  intelRdt?: { rdt: CdiIntelRdt; origin: string } | undefined;
}

function conflict(what: string, a: string, b: string): RuntimeError {
  return new RuntimeError(`devices: CDI edits conflict: ${what} (from ${a} and from ${b})`, { code: 'EINVAL', step: 'config' });
}

/** Merges edits in order. Throws naming the origin and field when a node is missing or two edits disagree. */
export function mergeEdits(sources: readonly CdiEditSource[], stat: StatNode = statHostNode): CdiApplied {
  const out: CdiApplied = { deviceNodes: [], rules: [], mounts: [], env: [], hooks: [], additionalGids: [], netDevices: [] };
  const netFrom = new Map<string, string>();
  const nodeFrom = new Map<string, string>();
  const mountFrom = new Map<string, string>();
  const envFrom = new Map<string, { value: string; origin: string }>();
  for (const { origin, edits } of sources) {
    edits.deviceNodes?.forEach((d, i) => {
      const field = `deviceNodes[${i}]`;
      const hostPath = d.hostPath ?? d.path;
      const host = stat(hostPath);
      if (!host) throw new RuntimeError(`devices: ${origin}: ${field}: host node ${hostPath} does not exist`, { code: 'ENOTFOUND', step: 'config', path: hostPath });
      if (host.type === 'other') throw new RuntimeError(`devices: ${origin}: ${field}: ${hostPath} is not a device node`, { code: 'EINVAL', step: 'config', path: hostPath });
      for (const [k, v] of [['type', d.type], ['major', d.major], ['minor', d.minor]] as const) {
        if (v !== undefined && v !== host[k]) {
          throw new RuntimeError(`devices: ${origin}: ${field}.${k}: the spec says ${v} but host node ${hostPath} has ${host[k]}`, { code: 'EINVAL', step: 'config', path: hostPath });
        }
      }
      const prev = out.deviceNodes.find((n) => n.path === d.path);
      if (prev) {
        if (prev.hostPath !== hostPath && (prev.major !== host.major || prev.minor !== host.minor || prev.type !== host.type)) {
          throw conflict(`device node ${d.path} is ${prev.hostPath} and ${hostPath}`, nodeFrom.get(d.path)!, origin);
        }
      } else {
        const own = { ...(d.fileMode !== undefined ? { fileMode: d.fileMode } : {}), ...(d.uid !== undefined ? { uid: d.uid } : {}), ...(d.gid !== undefined ? { gid: d.gid } : {}) };
        out.deviceNodes.push({ hostPath, path: d.path, type: host.type, major: host.major, minor: host.minor, ...own });
        nodeFrom.set(d.path, origin);
      }
      if (host.type !== 'p') {
        const access = d.permissions ?? 'rwm';
        if (!out.rules.some((r) => r.type === host.type && r.major === host.major && r.minor === host.minor && r.access === access)) {
          out.rules.push({ allow: true, type: host.type, major: host.major, minor: host.minor, access });
        }
      }
    });
    edits.mounts?.forEach((m, i) => {
      const type = m.type ?? 'bind';
      const opts = m.options ?? [];
      if (type !== 'bind' && type !== 'rbind' && !opts.includes('bind') && !opts.includes('rbind')) {
        throw new RuntimeError(`devices: ${origin}: mounts[${i}].type: only bind mounts are supported, got "${type}"`, { code: 'EUNSUPPORTED', step: 'config' });
      }
      const prev = out.mounts.find((x) => x.target === m.containerPath);
      const readOnly = opts.includes('ro');
      if (prev) {
        if (prev.source !== m.hostPath || prev.readOnly !== readOnly) throw conflict(`mount ${m.containerPath} is ${prev.source} and ${m.hostPath}`, mountFrom.get(m.containerPath)!, origin);
        return;
      }
      out.mounts.push({ source: m.hostPath, target: m.containerPath, readOnly });
      mountFrom.set(m.containerPath, origin);
    });
    for (const e of edits.env ?? []) {
      const eq = e.indexOf('=');
      const name = e.slice(0, eq);
      const value = e.slice(eq + 1);
      const prev = envFrom.get(name);
      if (prev && prev.value !== value) throw conflict(`${name} is "${prev.value}" and "${value}"`, prev.origin, origin);
      if (!prev) {
        envFrom.set(name, { value, origin });
        out.env.push(e);
      }
    }
    for (const n of edits.netDevices ?? []) {
      const prev = out.netDevices.find((x) => x.hostInterfaceName === n.hostInterfaceName || x.name === n.name);
      if (prev && (prev.hostInterfaceName !== n.hostInterfaceName || prev.name !== n.name)) {
        throw conflict(`network device ${prev.hostInterfaceName} as ${prev.name} and ${n.hostInterfaceName} as ${n.name}`, netFrom.get(prev.hostInterfaceName)!, origin);
      }
      if (!prev) {
        out.netDevices.push({ ...n, origin });
        netFrom.set(n.hostInterfaceName, origin);
      }
    }
    if (edits.intelRdt) {
      if (out.intelRdt && JSON.stringify(out.intelRdt.rdt) !== JSON.stringify(edits.intelRdt)) throw conflict('intelRdt differs', out.intelRdt.origin, origin);
      out.intelRdt ??= { rdt: edits.intelRdt, origin };
    }
    for (const h of edits.hooks ?? []) out.hooks.push(h);
    for (const g of edits.additionalGids ?? []) if (g !== 0 && !out.additionalGids.includes(g)) out.additionalGids.push(g);
  }
  return out;
}
