/**
 * Facts the runtime reads from the running kernel (procfs, sysfs, /dev) and the host programs
 * it runs (`tc`). They are part of the `Kernel` seam so that the recording fake answers them
 * in tests; nothing here guesses a value when the kernel does not answer.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { release } from 'node:os';
import { RuntimeError } from '../errors.js';
import { blockDeviceFor, hostBlockProbe } from '../isolation/blockdev.js';

export interface NetDevCounters {
  rxBytes: number;
  txBytes: number;
  rxPackets: number;
  txPackets: number;
}

export interface ProgramResult {
  status: number;
  stdout: string;
  stderr: string;
}

export interface HostFacts {
  /** /proc/sys/kernel/cap_last_cap: the highest capability this kernel knows. */
  capLastCap(): number;
  /** Field 22 of /proc/<pid>/stat (start time in clock ticks), or undefined when no such process. */
  processStartTime(pid: number): string | undefined;
  /** Interface counters of `pid`'s network namespace, all interfaces but loopback. */
  netDev(pid: number): NetDevCounters | undefined;
  /** CPUs of NUMA node `node` (sysfs cpulist). */
  numaNodeCpus(node: number): number[];
  /** "major:minor" of the whole disk that stores `path`'s data. */
  blockDevice(path: string): string;
  /** /proc/devices: the major numbers of character and block drivers. */
  procDevices(): string;
  /** Names in a device directory (/dev). */
  deviceNames(dir: string): string[];
  /** /proc/sys/kernel/random/boot_id: state from an earlier boot names processes that are gone. */
  bootId(): string;
  /**
   * Sends `signal` to `pid`; false when there is no such process. Only for processes that
   * cannot be reaped meanwhile (frozen, or children of a live spawner): a bare pid can be reused.
   */
  signalProcess(pid: number, signal: number): boolean;
  /** `uname -r`: seccomp rules can depend on the kernel version (Docker's minKernel). */
  kernelRelease(): string;
  /** Runs a host program (tc) off the event loop; a program that cannot start rejects. */
  runProgram(file: string, args: readonly string[]): Promise<ProgramResult>;
}

/** "0-3,8,10-11" → [0, 1, 2, 3, 8, 10, 11] (the kernel's cpulist format). */
export function parseCpuList(text: string): number[] {
  const out: number[] = [];
  for (const part of text.trim().split(',')) {
    if (!part) continue;
    const [a, b] = part.split('-').map(Number) as [number, number | undefined];
    for (let i = a; i <= (b ?? a); i++) out.push(i);
  }
  return out;
}

/** Sums /proc/<pid>/net/dev, which lists the interfaces of that process's network namespace. */
export function parseNetDev(text: string): NetDevCounters {
  const total = { rxBytes: 0, txBytes: 0, rxPackets: 0, txPackets: 0 };
  for (const line of text.split('\n').slice(2)) {
    const [name, rest] = line.split(':');
    if (!rest || name!.trim() === 'lo') continue;
    const f = rest.trim().split(/\s+/).map(Number);
    total.rxBytes += f[0]!;
    total.rxPackets += f[1]!;
    total.txBytes += f[8]!;
    total.txPackets += f[9]!;
  }
  return total;
}

/** Field 22 of a /proc/<pid>/stat line; the command name (field 2) may hold spaces and ')'. */
export function statStartTime(stat: string): string | undefined {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

function readKernelFile(path: string, what: string): string {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new RuntimeError(`read \`${path}\` (${what}): ${err.code ?? err.message}`, { code: 'ESYSCALL', step: 'config', errno: err.code, path, cause: e });
  }
}

/** The real host, read through node:fs and child processes. */
export const nativeHostFacts: HostFacts = {
  capLastCap() {
    const text = readKernelFile('/proc/sys/kernel/cap_last_cap', 'capabilities the kernel knows').trim();
    const n = Number(text);
    if (!/^\d+$/.test(text) || n > 63) {
      throw new RuntimeError(`read \`/proc/sys/kernel/cap_last_cap\`: expected 0..63, got "${text}"`, { code: 'EPROTO', step: 'config', path: '/proc/sys/kernel/cap_last_cap' });
    }
    return n;
  },
  processStartTime(pid) {
    try {
      return statStartTime(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return undefined;
    }
  },
  netDev(pid) {
    try {
      return parseNetDev(fs.readFileSync(`/proc/${pid}/net/dev`, 'utf8'));
    } catch {
      return undefined;
    }
  },
  numaNodeCpus(node) {
    return parseCpuList(readKernelFile(`/sys/devices/system/node/node${node}/cpulist`, `CPUs of NUMA node ${node}`));
  },
  blockDevice(path) {
    return blockDeviceFor(path, hostBlockProbe);
  },
  procDevices() {
    return readKernelFile('/proc/devices', 'device majors');
  },
  deviceNames(dir) {
    try {
      return fs.readdirSync(dir);
    } catch {
      return [];
    }
  },
  kernelRelease() {
    return release();
  },
  bootId() {
    return readKernelFile('/proc/sys/kernel/random/boot_id', 'the boot id').trim();
  },
  signalProcess(pid, signal) {
    try {
      process.kill(pid, signal);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
      throw new RuntimeError(`kill ${pid}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { code: 'ESYSCALL', step: 'signal', errno: (e as NodeJS.ErrnoException).code, cause: e });
    }
  },
  runProgram(file, args) {
    return new Promise((resolve, reject) => {
      execFile(file, [...args], { encoding: 'utf8' }, (err, stdout, stderr) => {
        const code = (err as { code?: unknown } | null)?.code;
        if (err && typeof code !== 'number') {
          reject(new RuntimeError(`run \`${file}\`: ${String(code ?? err.message)}`, { code: 'ESYSCALL', step: 'config', path: file, errno: typeof code === 'string' ? code : undefined, cause: err }));
          return;
        }
        resolve({ status: typeof code === 'number' ? code : 0, stdout, stderr });
      });
    });
  },
};
