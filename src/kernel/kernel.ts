/**
 * The one seam between the runtime's logic and the kernel. The real implementation goes
 * through the native addon and node:fs; tests of lifecycle, decisions and evolution use
 * `RecordingKernel` (test/helpers) and need no root.
 */
import * as fs from 'node:fs';
import { fromNodeError, type Step } from '../errors.js';
import { nativeHostFacts, type HostFacts, type NetDevCounters, type ProgramResult } from './host.js';
import { startRelay } from './relay.js';
import { loadNative, type NativeAddon, type NvmlInventory, type OciSeccompProfile } from './native.js';

export interface DeviceRuleData {
  allow: boolean;
  type: 'a' | 'b' | 'c';
  major?: number;
  minor?: number;
  access: string;
}

export interface Kernel extends HostFacts {
  /** One write(2) of a cgroup (or other kernel) file; errors name the file and the value. */
  cgroupWrite(path: string, value: string): void;
  readFile(path: string): string;
  /**
   * Counter files kept open for sampling many containers at once: `openCounter` once per
   * file (errors name it), then `readCounters` reads any number of them in one native call,
   * a pread each. `keys` name lines of a flat-keyed file ("usage_usec" in cpu.stat); none
   * means the file holds one number. Each handle's values follow each other in `out` (NaN
   * for a missing key); `errors[i]` is 0 or the errno of handle i (19, ENODEV, once its
   * cgroup is gone), its values then NaN. Returns how many values were stored.
   */
  openCounter(path: string, keys: readonly string[]): number;
  closeCounter(handle: number): void;
  readCounters(handles: Int32Array, out: Float64Array, errors: Int32Array): number;
  writeFile(path: string, data: string): void;
  exists(path: string): boolean;
  mkdir(path: string): void;
  /** Removes an empty directory (a cgroup); ENOENT is not an error. */
  rmdir(path: string): void;
  readdir(path: string): string[];
  compileSeccomp(profile: OciSeccompProfile): { bpf: Buffer; unknownSyscalls: string[] };
  /**
   * GPUs through NVML, loaded with dlopen from `library` (default libnvidia-ml.so.1), on a
   * worker thread: NVML's init can take seconds.
   */
  nvmlInventory(library?: string): Promise<NvmlInventory>;
  /** Attaches a cgroup v2 device filter (eBPF) built from the rules, replacing the previous one. */
  attachDeviceProgram(cgroupDir: string, rules: readonly DeviceRuleData[]): void;
  /**
   * Connects to a unix socket and sends one frame, with fds, on a worker thread; resolves with
   * the connected fd (the caller's to close). The fds stay the caller's: keep them open until
   * the promise settles.
   */
  request(socketPath: string, frame: Buffer, fds?: number[]): Promise<number>;
  /** Connects to a unix socket on a worker thread; resolves with the fd (the caller's to close). */
  connect(socketPath: string): Promise<number>;
  /**
   * One non-blocking sendmsg of `frame` with `fds` attached to its first byte; returns the
   * bytes sent (the caller writes the rest), or 0 when the socket was full and nothing went.
   * The fds stay the caller's (the kernel takes its own references).
   */
  send(fd: number, frame: Buffer, fds?: number[]): number;
  /** send() on a worker thread once the socket has room; keep the fds open until it settles. */
  sendWhenWritable(fd: number, frame: Buffer, fds?: number[]): Promise<number>;
  /** Whether the other end of a connected socket has gone (closed, its process dead); never waits. */
  peerGone(fd: number): boolean;
  pipe(): [number, number];
  close(fd: number): void;
  /**
   * A new pseudo-terminal: master and slave fds (close-on-exec), the slave owned by uid:gid;
   * in the host's devpts, or in the devpts of the container whose root is `root`.
   */
  openPty(uid: number, gid: number, root?: string): { master: number; slave: number; path: string };
  /**
   * Starts the relay that holds a terminal's master (native/tty/relay.c), detached, with
   * `master` as its fd 3; resolves once `socketPath` accepts clients. The caller's copy of
   * `master` stays the caller's to close.
   */
  startTerminalRelay(master: number, socketPath: string, logPath?: string): Promise<void>;
}

function wrapFs<T>(step: Step, what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw fromNodeError(e, step, what);
  }
}

export class NativeKernel implements Kernel {
  private addon: NativeAddon;
  constructor(addon: NativeAddon = loadNative()) {
    this.addon = addon;
  }
  cgroupWrite(path: string, value: string): void {
    this.addon.cgroupWrite(path, value);
  }
  /** One open/read/close in native code: cgroup files are read every second per container. */
  readFile(path: string): string {
    return this.addon.cgroupRead(path);
  }
  openCounter(path: string, keys: readonly string[]): number {
    return this.addon.counterOpen(path, keys);
  }
  closeCounter(handle: number): void {
    this.addon.counterClose(handle);
  }
  readCounters(handles: Int32Array, out: Float64Array, errors: Int32Array): number {
    return this.addon.counterRead(handles, out, errors);
  }
  writeFile(path: string, data: string): void {
    wrapFs('state', `write \`${path}\``, () => fs.writeFileSync(path, data));
  }
  exists(path: string): boolean {
    return fs.existsSync(path);
  }
  mkdir(path: string): void {
    wrapFs('cgroup', `mkdir \`${path}\``, () => fs.mkdirSync(path, { recursive: true }));
  }
  rmdir(path: string): void {
    try {
      fs.rmdirSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw fromNodeError(e, 'cleanup', `rmdir \`${path}\``);
    }
  }
  readdir(path: string): string[] {
    return wrapFs('cgroup', `readdir \`${path}\``, () => fs.readdirSync(path));
  }
  compileSeccomp(profile: OciSeccompProfile): { bpf: Buffer; unknownSyscalls: string[] } {
    return this.addon.compileSeccomp(profile);
  }
  nvmlInventory(library?: string): Promise<NvmlInventory> {
    return this.addon.nvmlInventory(library);
  }
  attachDeviceProgram(cgroupDir: string, rules: readonly DeviceRuleData[]): void {
    this.addon.attachDeviceProgram(cgroupDir, rules);
  }
  request(socketPath: string, frame: Buffer, fds?: number[]): Promise<number> {
    return this.addon.request(socketPath, frame, fds);
  }
  connect(socketPath: string): Promise<number> {
    return this.addon.connect(socketPath);
  }
  send(fd: number, frame: Buffer, fds?: number[]): number {
    return this.addon.send(fd, frame, fds);
  }
  sendWhenWritable(fd: number, frame: Buffer, fds?: number[]): Promise<number> {
    return this.addon.sendWhenWritable(fd, frame, fds);
  }
  peerGone(fd: number): boolean {
    return this.addon.peerGone(fd);
  }
  pipe(): [number, number] {
    return this.addon.pipe();
  }
  close(fd: number): void {
    this.addon.close(fd);
  }
  openPty(uid: number, gid: number, root?: string): { master: number; slave: number; path: string } {
    return root === undefined ? this.addon.openPty(uid, gid) : this.addon.openPty(uid, gid, root);
  }
  startTerminalRelay(master: number, socketPath: string, logPath?: string): Promise<void> {
    return startRelay(master, socketPath, logPath);
  }
  capLastCap(): number {
    return nativeHostFacts.capLastCap();
  }
  processStartTime(pid: number): string | undefined {
    return nativeHostFacts.processStartTime(pid);
  }
  netDev(pid: number): NetDevCounters | undefined {
    return nativeHostFacts.netDev(pid);
  }
  numaNodeCpus(node: number): number[] {
    return nativeHostFacts.numaNodeCpus(node);
  }
  blockDevice(path: string): string {
    return nativeHostFacts.blockDevice(path);
  }
  procDevices(): string {
    return nativeHostFacts.procDevices();
  }
  deviceNames(dir: string): string[] {
    return nativeHostFacts.deviceNames(dir);
  }
  kernelRelease(): string {
    return nativeHostFacts.kernelRelease();
  }
  bootId(): string {
    return nativeHostFacts.bootId();
  }
  signalProcess(pid: number, signal: number): boolean {
    return nativeHostFacts.signalProcess(pid, signal);
  }
  runProgram(file: string, args: readonly string[]): Promise<ProgramResult> {
    return nativeHostFacts.runProgram(file, args);
  }
}

let shared: Kernel | undefined;
export function defaultKernel(): Kernel {
  shared ??= new NativeKernel();
  return shared;
}
