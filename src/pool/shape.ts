/**
 * A container's shape: what a parked init has fixed and cannot change any more — its image
 * layers, namespaces, network mode and shaping, volumes, user namespace, root filesystem
 * mode, masked and read-only paths, device nodes, and for the default security profile its
 * seccomp program (loaded before the park: the kernel's compilation of it is the slowest
 * step of a start). Two plans of one shape can be served by
 * the same pooled container; everything else (the process, its identity and confinement,
 * the cgroup limits, the hostname) is applied when it is taken.
 */
import { createHash } from 'node:crypto';
import type { SpawnPlan } from '../plan/types.js';

/** The shape's key, or undefined for a plan no pooled container can serve (GPUs). */
export function shapeKey(plan: SpawnPlan, defaultProfile: boolean): string | undefined {
  if (plan.devices.length > 0 || plan.deviceNodes?.length || plan.hooks?.length || plan.netDevices?.length || plan.intelRdt || plan.gpus) return undefined;
  const sec = plan.process.security;
  return JSON.stringify({
    // The default profile's program is loaded at the park point: it is part of the shape.
    seccomp: defaultProfile && sec.seccomp ? createHash('sha256').update(sec.seccomp.bpf).digest('hex') : 'at-start',
    layers: plan.image.layers,
    namespaces: [...plan.namespaces].sort(),
    network: plan.network.mode,
    bandwidth: plan.network.bandwidthMbps ?? null,
    volumes: plan.volumes.map((v) => [v.source, v.target, v.readOnly, v.isFile]),
    userns: plan.userNamespace?.size ?? 0,
    readonlyRoot: sec.readonlyRoot,
    masked: sec.maskedPaths,
    readonly: sec.readonlyPaths,
  });
}

/** A short, stable name for a shape in logs and statistics. */
export function shapeLabel(image: string, key: string): string {
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619) >>> 0;
  return `${image}#${h.toString(16).padStart(8, '0')}`;
}

/** `STRATOSWARM_POOL`: "image=N[,image=N...]"; errors name the entry. */
export function parsePoolSetting(value: string): { image: string; size: number }[] {
  const out: { image: string; size: number }[] = [];
  for (const raw of value.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const eq = entry.lastIndexOf('=');
    const image = eq > 0 ? entry.slice(0, eq).trim() : '';
    const size = eq > 0 ? Number(entry.slice(eq + 1)) : NaN;
    if (!image || !Number.isInteger(size) || size < 0 || size > 256) {
      throw new Error(`"${entry}": expected image=N with N an integer in [0, 256]`);
    }
    out.push({ image, size });
  }
  return out;
}
