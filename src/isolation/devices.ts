/**
 * Device-access rules: the default set every container gets, the rules a GPU needs, and the
 * v1 text form.
 */
import { Problems } from '../errors.js';
import type { DeviceRule } from './resources.js';

const rw = (major: number, minor: number | undefined): DeviceRule => ({ allow: true, type: 'c', major, minor, access: 'rwm' });

/**
 * What runc and Docker allow by default. mknod of any node is allowed because creating a
 * node grants nothing: opening it is what the rules below decide. /dev/console is left out:
 * a container's console is a bind-mounted pts, which 136:* covers. tun (10:200) is left out as
 * runc 1.2 did: network devices are the network's business.
 */
export const DEFAULT_DEVICE_RULES: readonly DeviceRule[] = Object.freeze([
  { allow: true, type: 'c', access: 'm' },
  { allow: true, type: 'b', access: 'm' },
  rw(1, 3), // /dev/null
  rw(1, 5), // /dev/zero
  rw(1, 7), // /dev/full
  rw(1, 8), // /dev/random
  rw(1, 9), // /dev/urandom
  rw(5, 0), // /dev/tty
  rw(5, 2), // /dev/ptmx
  rw(136, undefined), // /dev/pts/*
]);

/** The line v1's devices.allow / devices.deny take: "c 1:3 rwm"; "a" switches the default. */
export function v1DeviceLine(rule: DeviceRule): string {
  if (rule.type === 'a') return 'a';
  return `${rule.type} ${rule.major ?? '*'}:${rule.minor ?? '*'} ${rule.access}`;
}

/** Parses one line of v1's devices.list ("c 136:* rwm") back into an allow rule. */
export function parseV1DeviceLine(line: string): DeviceRule | undefined {
  const m = /^([abc]) (\*|\d+):(\*|\d+) ([rwm]+)$/.exec(line.trim());
  if (!m) return undefined;
  const num = (s: string) => (s === '*' ? undefined : Number(s));
  return { allow: true, type: m[1] as DeviceRule['type'], major: num(m[2]!), minor: num(m[3]!), access: m[4]! };
}

/** /proc/devices as two maps, name → major, for character and block devices. */
export function parseProcDevices(text: string): { char: Map<string, number>; block: Map<string, number> } {
  const char = new Map<string, number>();
  const block = new Map<string, number>();
  let section: Map<string, number> | undefined;
  for (const line of text.split('\n')) {
    if (/^Character devices:/.test(line)) section = char;
    else if (/^Block devices:/.test(line)) section = block;
    else {
      const m = /^\s*(\d+)\s+(\S.*)$/.exec(line);
      // The first registration of a name wins, as the driver that registered it first owns it.
      if (m && section && !section.has(m[2]!)) section.set(m[2]!, Number(m[1]));
    }
  }
  return { char, block };
}

/** /dev/nvidia<N> and /dev/nvidiactl use the fixed character major the NVIDIA driver registers. */
export const NVIDIA_MAJOR = 195;
const NVIDIACTL_MINOR = 255;

/**
 * The rules giving a container the listed GPUs: /dev/nvidiactl, /dev/nvidia<i> and, when the
 * nvidia-uvm module is loaded (its major is dynamic, so read from /proc/devices),
 * /dev/nvidia-uvm and /dev/nvidia-uvm-tools. MIG capability devices (nvidia-caps) are the
 * CDI spec's to add.
 */
export function nvidiaDeviceRules(gpuIndexes: readonly number[], procDevices: string): DeviceRule[] {
  const problems = new Problems();
  gpuIndexes.forEach((g, i) => {
    // Minors 254 and 255 are nvidia-modeset and nvidiactl, not GPUs.
    if (!Number.isInteger(g) || g < 0 || g > 253) problems.add(`gpus[${i}]`, `expected a GPU index 0..253, got ${String(g)}`);
  });
  problems.throwIfAny('invalid GPU list');
  if (gpuIndexes.length === 0) return [];
  const rules: DeviceRule[] = [rw(NVIDIA_MAJOR, NVIDIACTL_MINOR)];
  for (const g of [...new Set(gpuIndexes)].sort((a, b) => a - b)) rules.push(rw(NVIDIA_MAJOR, g));
  const uvm = parseProcDevices(procDevices).char.get('nvidia-uvm');
  if (uvm !== undefined) rules.push(rw(uvm, 0), rw(uvm, 1));
  return rules;
}
