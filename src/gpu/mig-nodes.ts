/**
 * The device nodes of a MIG instance without a CDI spec, found as the NVIDIA driver
 * publishes them: the parent GPU's /dev/nvidia<minor>, and two capability nodes
 * /dev/nvidia-caps/nvidia-cap<N> (one for its GPU instance, one for its compute instance)
 * whose minors N the driver lists in `/proc/driver/nvidia/capabilities/gpu<minor>/mig/
 * gi<G>/access` and `.../gi<G>/ci<C>/access` ("DeviceFileMinor: N"); their major is that of
 * `nvidia-caps` in /proc/devices. What cannot be found is an error naming the file, never a
 * container given a MIG instance it cannot open.
 */
import { join } from 'node:path';
import { RuntimeError } from '../errors.js';
import { parseProcDevices } from '../isolation/devices.js';
import type { DeviceRule } from '../isolation/resources.js';
import type { MigInstance } from './mig.js';

export const NVIDIA_CAPS_DIR = '/proc/driver/nvidia/capabilities';

export interface MigNodeHost {
  /** The driver's capability directory (NVIDIA_CAPS_DIR). */
  capsDir: string;
  devDir: string;
  procDevices: string;
  /** A file's text; undefined when it cannot be read. */
  read(path: string): string | undefined;
  exists(path: string): boolean;
}

/** Host node → container path, and the device rules allowing them. */
export interface MigNodes {
  deviceNodes: { hostPath: string; path: string }[];
  rules: DeviceRule[];
}

/** The capability nodes of MIG instance `m` of the GPU whose node minor is `minor`. */
export function migCapNodes(m: MigInstance, minor: number, host: MigNodeHost, field = 'gpuMig'): MigNodes {
  const fail = (why: string, path?: string) =>
    new RuntimeError(`${field}: MIG ${m.id} cannot be given without a CDI spec: ${why} (or use the nvidia engine with a CDI spec of nvidia.com/gpu)`, { code: 'EUNSUPPORTED', step: 'config', ...(path ? { path } : {}) });
  if (m.gpuInstanceId === undefined || m.computeInstanceId === undefined) throw fail('NVML did not report its GPU and compute instance ids');
  const major = parseProcDevices(host.procDevices).char.get('nvidia-caps');
  if (major === undefined) throw fail('no nvidia-caps character device in /proc/devices');
  const gi = join(host.capsDir, `gpu${minor}`, 'mig', `gi${m.gpuInstanceId}`);
  const out: MigNodes = { deviceNodes: [], rules: [] };
  for (const file of [join(gi, 'access'), join(gi, `ci${m.computeInstanceId}`, 'access')]) {
    const text = host.read(file);
    if (text === undefined) throw fail(`cannot read ${file}`, file);
    const n = /^DeviceFileMinor:\s*(\d+)\s*$/m.exec(text)?.[1];
    if (n === undefined) throw fail(`${file} has no DeviceFileMinor`, file);
    const node = join(host.devDir, 'nvidia-caps', `nvidia-cap${n}`);
    if (!host.exists(node)) throw fail(`no ${node}`, node);
    out.deviceNodes.push({ hostPath: node, path: `/dev/nvidia-caps/nvidia-cap${n}` });
    out.rules.push({ allow: true, type: 'c', major, minor: Number(n), access: 'rw' });
  }
  return out;
}
