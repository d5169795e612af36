/**
 * An in-memory cgroup filesystem behind the `Kernel` seam, so the driver's logic (which file,
 * which value, which order, what is undone) is tested without root. It models what the driver
 * relies on: the files a new cgroup gets, v1 cpuset clone_children, v2 subtree_control
 * delegation, keyed files (io.max, blkio throttles), devices.list, freezer state, and rmdir's
 * EBUSY. It does not model limits being enforced.
 */
import { RuntimeError, type ErrorCode } from '../errors.js';
import type { NetDevCounters, ProgramResult } from '../kernel/host.js';
import type { Kernel } from '../kernel/kernel.js';
import type { OciSeccompProfile } from '../kernel/native.js';
import { CONTROLLERS, type CgroupLayout, type Controller } from './layout.js';
import { keyedContent, V1_FILES, V2_FILES } from './memory-fs-files.js';

interface Mount {
  path: string;
  version: 1 | 2;
  controllers: Controller[];
}

export interface RecordedWrite {
  path: string;
  value: string;
}

/** Decides whether a write fails: return an errno name ("EINVAL") to fail it. */
export type WriteFault = (path: string, value: string) => string | undefined;

const base = (p: string) => p.slice(p.lastIndexOf('/') + 1);
const parentOf = (p: string) => p.slice(0, p.lastIndexOf('/')) || '/';

export class MemoryCgroupFs implements Kernel {
  readonly files = new Map<string, string>();
  readonly dirs = new Set<string>();
  /** Every cgroupWrite/writeFile that succeeded, in order. */
  readonly writes: RecordedWrite[] = [];
  private readonly mounts: Mount[] = [];
  private faults: WriteFault[] = [];

  /** A filesystem with the hierarchies of `layout`, each root populated as the kernel does. */
  /**
   * `rootSubtreeControl` defaults to every v2 controller on a pure-v2 host (systemd enables them
   * at the root) and to none on a hybrid one (this project's CI VM).
   */
  static forLayout<T extends MemoryCgroupFs>(
    this: new () => T,
    layout: CgroupLayout,
    options: { cpus?: string; mems?: string; rootSubtreeControl?: string[] } = {},
  ): T {
    const fs = new this();
    const v1Mounts = new Map<string, Controller[]>();
    for (const c of CONTROLLERS) {
      const m = layout.v1[c];
      if (m !== undefined) v1Mounts.set(m, [...(v1Mounts.get(m) ?? []), c]);
    }
    for (const [path, controllers] of v1Mounts) fs.addMount({ path, version: 1, controllers });
    if (layout.v2) {
      const controllers = CONTROLLERS.filter((c) => layout.controllers[c]?.version === 2);
      fs.addMount({ path: layout.v2.mount, version: 2, controllers });
      fs.files.set(`${layout.v2.mount}/cgroup.controllers`, layout.v2.controllers.join(' '));
      const pureV2 = Object.keys(layout.v1).length === 0;
      fs.files.set(`${layout.v2.mount}/cgroup.subtree_control`, (options.rootSubtreeControl ?? (pureV2 ? layout.v2.controllers : [])).join(' '));
    }
    for (const [path, controllers] of v1Mounts) {
      if (controllers.includes('cpuset')) {
        fs.files.set(`${path}/cpuset.cpus`, options.cpus ?? '0-1');
        fs.files.set(`${path}/cpuset.mems`, options.mems ?? '0');
      }
    }
    return fs;
  }

  private addMount(m: Mount): void {
    this.mounts.push(m);
    this.dirs.add(m.path);
    for (const [k, v] of Object.entries(this.filesFor(m, m.path))) this.files.set(`${m.path}/${k}`, v);
  }

  /** Makes matching writes fail with the errno `fault` returns; cleared by clearFaults(). */
  failWrites(fault: WriteFault): this {
    this.faults.push(fault);
    return this;
  }

  /** Makes writes to files named `file` fail with `errno` (optionally only for `value`). */
  failOn(file: string, errno = 'EINVAL', value?: string): this {
    return this.failWrites((p, v) => (base(p) === file && (value === undefined || v === value) ? errno : undefined));
  }

  clearFaults(): void {
    this.faults = [];
  }

  /** The content of a file, for assertions. */
  get(path: string): string | undefined {
    return this.files.get(path);
  }

  /** Sets a file as the kernel would (counters, events) without recording a write. */
  set(path: string, content: string): void {
    this.files.set(path, content);
  }

  private mountOf(path: string): Mount | undefined {
    return this.mounts.filter((m) => path === m.path || path.startsWith(`${m.path}/`)).sort((a, b) => b.path.length - a.path.length)[0];
  }

  private filesFor(m: Mount, dir: string): Record<string, string> {
    const common: Record<string, string> = { 'cgroup.procs': '' };
    if (m.version === 1) {
      Object.assign(common, { tasks: '', 'cgroup.clone_children': '0', notify_on_release: '0' });
      for (const c of m.controllers) Object.assign(common, V1_FILES[c]);
      return common;
    }
    const isRoot = dir === m.path;
    Object.assign(common, {
      'cgroup.controllers': '',
      'cgroup.subtree_control': '',
      'cgroup.max.depth': 'max',
      'cgroup.max.descendants': 'max',
      'cpu.stat': 'usage_usec 0\nuser_usec 0\nsystem_usec 0\n',
    });
    if (!isRoot) Object.assign(common, { 'cgroup.events': 'populated 0\nfrozen 0\n', 'cgroup.freeze': '0' });
    if (isRoot) return common;
    // A v2 child has the files of the controllers its parent enabled for it.
    const enabled = (this.files.get(`${parentOf(dir)}/cgroup.subtree_control`) ?? '').split(' ').filter(Boolean);
    common['cgroup.controllers'] = enabled.join(' ');
    for (const name of enabled) Object.assign(common, V2_FILES[name] ?? {});
    if (enabled.includes('cpu')) common['cpu.stat'] += 'nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n';
    return common;
  }

  private error(code: ErrorCode, errno: string, syscall: string, path: string, message: string): RuntimeError {
    return new RuntimeError(message, { code, step: 'cgroup', errno, syscall, path });
  }

  cgroupWrite(path: string, value: string): void {
    const name = base(path);
    if (!this.files.has(path)) throw this.error('ESYSCALL', 'ENOENT', 'open', path, `open \`${name}\`: ENOENT (value "${value}")`);
    for (const f of this.faults) {
      const errno = f(path, value);
      if (errno !== undefined) throw this.error('ESYSCALL', errno, 'write', path, `write \`${name}\`: ${errno} (value "${value}")`);
    }
    this.writes.push({ path, value });
    const dir = parentOf(path);
    const keyed = keyedContent(name, value, this.files.get(path));
    if (keyed !== undefined) {
      this.files.set(path, keyed);
      // One weight behind both v1 files: weight_device's "default" line shows it too.
      const dev = `${dir}/blkio.bfq.weight_device`;
      if (name === 'blkio.bfq.weight' && this.files.has(dev)) this.files.set(dev, this.files.get(dev)!.replace(/^default \d+/, `default ${value.trim()}`));
    } else if (name === 'devices.allow' || name === 'devices.deny') {
      const listPath = `${dir}/devices.list`;
      let list = (this.files.get(listPath) ?? '').split('\n').filter(Boolean);
      if (value === 'a') list = name === 'devices.allow' ? ['a *:* rwm'] : [];
      else if (name === 'devices.allow' && !list.includes('a *:* rwm')) list.push(value);
      else if (name === 'devices.deny') list = list.filter((l) => l !== value);
      this.files.set(listPath, list.map((l) => `${l}\n`).join(''));
      this.files.set(path, value);
    } else if (name === 'cgroup.procs') {
      const procs = (this.files.get(path) ?? '').split('\n').filter(Boolean);
      if (!procs.includes(value)) procs.push(value);
      this.files.set(path, procs.map((p) => `${p}\n`).join(''));
    } else if (name === 'cgroup.subtree_control') {
      const set = new Set((this.files.get(path) ?? '').split(' ').filter(Boolean));
      for (const tok of value.split(' ')) {
        if (tok.startsWith('+')) set.add(tok.slice(1));
        else if (tok.startsWith('-')) set.delete(tok.slice(1));
      }
      this.files.set(path, [...set].join(' '));
      // Children see the change at once: their cgroup.controllers and the controllers' files.
      const m = this.mountOf(path);
      for (const child of this.readdir(dir)) {
        const cdir = `${dir}/${child}`;
        if (!m || !this.dirs.has(cdir)) continue;
        for (const [k, v] of Object.entries(this.filesFor(m, cdir))) if (!this.files.has(`${cdir}/${k}`) || k === 'cgroup.controllers') this.files.set(`${cdir}/${k}`, v);
      }
    } else if (name === 'memory.oom_control') {
      // A write sets the flag; the file goes on listing the rest.
      const cur = this.files.get(path) ?? '';
      this.files.set(path, cur.replace(/oom_kill_disable \d/, `oom_kill_disable ${value.trim() === '1' ? 1 : 0}`));
    } else if (name === 'cgroup.freeze') {
      this.files.set(path, value);
      this.files.set(`${dir}/cgroup.events`, `populated 0\nfrozen ${value === '1' ? 1 : 0}\n`);
    } else {
      this.files.set(path, value);
    }
  }

  readFile(path: string): string {
    const v = this.files.get(path);
    if (v === undefined) {
      throw this.error(this.dirs.has(path) ? 'ESYSCALL' : 'ENOTFOUND', this.dirs.has(path) ? 'EISDIR' : 'ENOENT', 'open', path, `read \`${path}\`: ENOENT`);
    }
    return v;
  }

  writeFile(path: string, data: string): void {
    this.cgroupWrite(path, data);
  }

  /** Open counter files by handle, and how many batched reads were made, for assertions. */
  readonly counters = new Map<number, { path: string; keys: string[] }>();
  counterReads = 0;
  private nextCounter = 0;

  openCounter(path: string, keys: readonly string[]): number {
    this.readFile(path);
    const h = this.nextCounter++;
    this.counters.set(h, { path, keys: keys.length > 0 ? [...keys] : [''] });
    return h;
  }

  closeCounter(handle: number): void {
    this.counters.delete(handle);
  }

  /** As the addon: a removed file reads as ENODEV (19), an unknown handle as EBADF (9). */
  readCounters(handles: Int32Array, out: Float64Array, errors: Int32Array): number {
    this.counterReads++;
    let at = 0;
    handles.forEach((h, i) => {
      const c = this.counters.get(h);
      if (!c) {
        errors[i] = 9;
        return;
      }
      const text = this.files.get(c.path);
      errors[i] = text === undefined ? 19 : 0;
      for (const key of c.keys) {
        if (text === undefined) out[at++] = NaN;
        else if (key === '') out[at++] = text.trim() === '' ? NaN : Number(text.trim());
        else {
          const line = text.split('\n').find((l) => l.startsWith(`${key} `));
          out[at++] = line === undefined ? NaN : Number(line.slice(key.length + 1));
        }
      }
    });
    return at;
  }

  exists(path: string): boolean {
    return this.files.has(path) || this.dirs.has(path);
  }

  mkdir(path: string): void {
    if (this.dirs.has(path)) return;
    if (this.files.has(path)) throw this.error('ESYSCALL', 'EEXIST', 'mkdir', path, `mkdir \`${path}\`: EEXIST`);
    const up = parentOf(path);
    if (!this.dirs.has(up)) this.mkdir(up);
    this.dirs.add(path);
    const m = this.mountOf(path);
    if (!m || m.path === path) return;
    for (const [k, v] of Object.entries(this.filesFor(m, path))) this.files.set(`${path}/${k}`, v);
    if (m.version === 1 && m.controllers.includes('cpuset') && this.files.get(`${up}/cgroup.clone_children`) === '1') {
      this.files.set(`${path}/cpuset.cpus`, this.files.get(`${up}/cpuset.cpus`) ?? '');
      this.files.set(`${path}/cpuset.mems`, this.files.get(`${up}/cpuset.mems`) ?? '');
    }
  }

  rmdir(path: string): void {
    if (!this.dirs.has(path)) return;
    const prefix = `${path}/`;
    if ([...this.dirs].some((d) => d.startsWith(prefix)) || (this.files.get(`${path}/cgroup.procs`) ?? '').trim() !== '') {
      throw this.error('ESYSCALL', 'EBUSY', 'rmdir', path, `rmdir \`${path}\`: EBUSY`);
    }
    this.dirs.delete(path);
    for (const f of [...this.files.keys()]) if (f.startsWith(prefix)) this.files.delete(f);
  }

  readdir(path: string): string[] {
    if (!this.dirs.has(path)) throw this.error('ENOTFOUND', 'ENOENT', 'scandir', path, `readdir \`${path}\`: ENOENT`);
    const prefix = `${path}/`;
    const names = new Set<string>();
    for (const p of [...this.dirs, ...this.files.keys()]) {
      if (p.startsWith(prefix) && !p.slice(prefix.length).includes('/')) names.add(p.slice(prefix.length));
    }
    return [...names].sort();
  }

  /** The directories below `path` (cgroups), for assertions. */
  cgroupsUnder(path: string): string[] {
    return [...this.dirs].filter((d) => d.startsWith(`${path}/`)).sort();
  }

  compileSeccomp(_profile: OciSeccompProfile): { bpf: Buffer; unknownSyscalls: string[] } {
    throw new RuntimeError('MemoryCgroupFs models cgroup files only', { code: 'EUNSUPPORTED' });
  }
  async nvmlInventory(): Promise<never> {
    throw new RuntimeError('MemoryCgroupFs models cgroup files only', { code: 'EUNSUPPORTED' });
  }
  /** Records the program's rules as a write to a pseudo-file, so tests can read them back. */
  attachDeviceProgram(cgroupDir: string, rules: readonly { allow: boolean; type: string; major?: number; minor?: number; access: string }[]): void {
    this.attachedPrograms.set(cgroupDir, rules.map((r) => ({ ...r })));
  }
  readonly attachedPrograms = new Map<string, { allow: boolean; type: string; major?: number; minor?: number; access: string }[]>();
  async request(_socketPath: string, _frame: Buffer, _fds?: number[]): Promise<never> {
    throw new RuntimeError('MemoryCgroupFs models cgroup files only', { code: 'EUNSUPPORTED' });
  }
  async connect(_socketPath: string): Promise<never> {
    throw new RuntimeError('MemoryCgroupFs models cgroup files only', { code: 'EUNSUPPORTED' });
  }
  send(_fd: number, _frame: Buffer, _fds?: number[]): never {
    throw new RuntimeError('MemoryCgroupFs models cgroup files only', { code: 'EUNSUPPORTED' });
  }
  async sendWhenWritable(_fd: number, _frame: Buffer, _fds?: number[]): Promise<never> {
    throw new RuntimeError('MemoryCgroupFs models cgroup files only', { code: 'EUNSUPPORTED' });
  }
  peerGone(_fd: number): boolean {
    return true;
  }
  pipe(): [number, number] {
    throw new RuntimeError('MemoryCgroupFs models cgroup files only', { code: 'EUNSUPPORTED' });
  }
  close(_fd: number): void {}
  openPty(_uid: number, _gid: number): never {
    throw new RuntimeError('MemoryCgroupFs models cgroup files only', { code: 'EUNSUPPORTED' });
  }
  async startTerminalRelay(_master: number, _socketPath: string, _logPath?: string): Promise<never> {
    throw new RuntimeError('MemoryCgroupFs models cgroup files only', { code: 'EUNSUPPORTED' });
  }

  /** Host facts the fake answers; tests set what a case needs. */
  readonly host: {
    capLastCap: number;
    /** pid → start time; a pid not listed is no process. */
    processes: Map<number, string>;
    netDev: Map<number, NetDevCounters>;
    numaCpus: Map<number, number[]>;
    blockDevice: string;
    kernelRelease: string;
    bootId: string;
    /** Every signal sent, in order. */
    signals: { pid: number; signal: number }[];
    procDevices: string;
    devices: Map<string, string[]>;
    /** Every program run, in order; `programResult` answers them. */
    programs: { file: string; args: string[] }[];
    programResult: (file: string, args: readonly string[]) => ProgramResult;
  } = {
    capLastCap: 40,
    processes: new Map(),
    netDev: new Map(),
    numaCpus: new Map([[0, [0, 1]]]),
    blockDevice: '8:0',
    kernelRelease: '6.18.0',
    bootId: 'boot-1',
    signals: [],
    procDevices: 'Character devices:\n  1 mem\n195 nvidia\n\nBlock devices:\n  8 sd\n',
    devices: new Map(),
    programs: [],
    programResult: () => ({ status: 0, stdout: '', stderr: '' }),
  };
  capLastCap(): number {
    return this.host.capLastCap;
  }
  processStartTime(pid: number): string | undefined {
    return this.host.processes.get(pid);
  }
  netDev(pid: number): NetDevCounters | undefined {
    return this.host.netDev.get(pid);
  }
  numaNodeCpus(node: number): number[] {
    const cpus = this.host.numaCpus.get(node);
    if (!cpus) throw new RuntimeError(`read \`/sys/devices/system/node/node${node}/cpulist\`: ENOENT`, { code: 'ESYSCALL', step: 'config', errno: 'ENOENT' });
    return [...cpus];
  }
  blockDevice(_path: string): string {
    return this.host.blockDevice;
  }
  procDevices(): string {
    return this.host.procDevices;
  }
  deviceNames(dir: string): string[] {
    return [...(this.host.devices.get(dir) ?? [])];
  }
  kernelRelease(): string {
    return this.host.kernelRelease;
  }
  bootId(): string {
    return this.host.bootId;
  }
  signalProcess(pid: number, signal: number): boolean {
    this.host.signals.push({ pid, signal });
    return this.host.processes.has(pid);
  }
  async runProgram(file: string, args: readonly string[]): Promise<ProgramResult> {
    this.host.programs.push({ file, args: [...args] });
    return this.host.programResult(file, args);
  }
}
