/**
 * The native addon, typed. Nothing else in src/ touches the raw addon: TypeScript reaches the
 * kernel through `Kernel` (kernel.ts), which wraps this module and has a recording fake for
 * tests that run without root.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RuntimeError, STEPS } from '../errors.js';

export interface OciSeccompArg {
  index: number;
  value: number | bigint;
  valueTwo?: number | bigint;
  op: string;
}
export interface OciSeccompRule {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: OciSeccompArg[];
}
export interface OciSeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  syscalls?: OciSeccompRule[];
}

export interface NvmlDevice {
  index: number;
  name: string;
  uuid: string;
  pciBusId: string;
  /** /dev/nvidia<minor>; -1 when NVML does not report it. */
  minor: number;
  memoryTotal: number;
  memoryUsed: number;
  /** Percent; -1 when the GPU does not report it. */
  gpuUtilization: number;
  memoryUtilization: number;
  /** Compute processes on it (host pids): device memory in bytes, SM and memory utilisation in percent (-1: not reported). */
  processes?: { pid: number; usedMemory: number; smUtilization: number; memoryUtilization: number }[];
  /** 1 MIG on, 0 off, -1 not supported. */
  migMode?: number;
  /** Its MIG devices when MIG is on: NVML's MIG index, name ("<GPU> MIG 1g.10gb"), UUID, memory, GPU and compute instance ids (-1 unknown). */
  migDevices?: { index: number; name: string; uuid: string; memoryTotal: number; gpuInstanceId: number; computeInstanceId: number }[];
  /** PCI bus ids at the far end of its active NVLinks. */
  nvlinkPeerBusIds?: string[];
  /** NVML's PCIe topology level to each GPU by index (0 same board ... 50 across NUMA nodes; -1 unknown). */
  pcieLevels?: number[];
}
export interface NvmlInventory {
  library: string;
  driverVersion: string;
  devices: NvmlDevice[];
}

export interface UnpackEntry {
  kind: 'directory' | 'file' | 'symlink' | 'hardlink' | 'fifo' | 'whiteout' | 'opaque';
  /** Relative to the root, normalised: no "..", no leading "/". */
  path: string;
  mode?: number;
  /** A symlink's text, or a hard link's target path in the layer. */
  target?: string;
}
export interface UnpackMeta {
  path: string;
  uid?: number;
  gid?: number;
  mode?: number;
  mtimeSec?: number;
  mtimeNsec?: number;
  isSymlink?: boolean;
  xattrs?: [string, Buffer][];
}

/** The raw addon (native/addon.cc). */
export interface NativeAddon {
  init(errorClass: typeof RuntimeError): string[];
  /** Resolves once connected and sent; the fds must stay open until then (the addon never closes them). */
  request(socketPath: string, frame: Buffer, fds?: number[]): Promise<number>;
  /** A connected socket (connect on a worker thread: the listener's backlog may be full). */
  connect(socketPath: string): Promise<number>;
  /** One non-blocking sendmsg, the fds with the first byte: the bytes sent, 0 when the socket was full. */
  send(fd: number, frame: Buffer, fds?: number[]): number;
  /** send() on a worker thread once the socket has room (on a dup of fd): the bytes sent. */
  sendWhenWritable(fd: number, frame: Buffer, fds?: number[]): Promise<number>;
  /** Whether the other end of a connected socket has gone (poll with no timeout). */
  peerGone(fd: number): boolean;
  pipe(): [number, number];
  close(fd: number): void;
  /** An exclusive flock(2) on fd without waiting: false when another open file holds it. */
  tryLock(fd: number): boolean;
  openPty(uid: number, gid: number, root?: string): { master: number; slave: number; path: string };
  cgroupWrite(path: string, value: string): void;
  cgroupRead(path: string): string;
  /** Opens a counter file for counterRead; keys name lines of a flat-keyed file, none means the file is one number. */
  counterOpen(path: string, keys: readonly string[]): number;
  counterClose(handle: number): void;
  /** One pread per handle; each handle's key values follow each other in `out`, NaN where missing; errno per handle in `errors`. */
  counterRead(handles: Int32Array, out: Float64Array, errors: Int32Array): number;
  compileSeccomp(profile: OciSeccompProfile): { bpf: Buffer; unknownSyscalls: string[] };
  nvmlInventory(library?: string): Promise<NvmlInventory>;
  /** Layer unpacking beneath a root fd (native/unpack.cc): nothing is ever written outside it. */
  unpackOpenRoot(dir: string): number;
  unpackCreate(rootFd: number, entry: UnpackEntry): number;
  unpackMeta(rootFd: number, meta: UnpackMeta): void;
  attachDeviceProgram(cgroupDir: string, rules: readonly { allow: boolean; type: string; major?: number; minor?: number; access: string }[]): void;
}

const here = dirname(fileURLToPath(import.meta.url));

/** The package root: src/kernel when run from source, dist/src/kernel when compiled. */
export function packageRoot(): string {
  let dir = here;
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'binding.gyp'))) return dir;
    dir = dirname(dir);
  }
  return resolve(here, '..', '..');
}

/** Where the addon and the spawner may be, in the order they are tried. */
export function candidatePaths(file: string, root = packageRoot()): string[] {
  const fromEnv = process.env.STRATOSWARM_NATIVE_DIR;
  const dirs = [
    ...(fromEnv ? [fromEnv] : []),
    join(root, 'build', 'Release'),
    join(root, 'build', 'Debug'),
    join(root, 'prebuilds', `${process.platform}-${process.arch}`),
  ];
  return dirs.map((d) => join(d, file));
}

let loaded: NativeAddon | undefined;

/**
 * Loads the addon once, through `bindings` (which knows node-gyp's output directories), after
 * STRATOSWARM_NATIVE_DIR when that is set. The error lists every path tried and says how to
 * build the addon. `explicitPaths` (tests) replaces the search.
 */
export function loadNative(explicitPaths?: string[]): NativeAddon {
  if (loaded && !explicitPaths) return loaded;
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  let addon: NativeAddon | undefined;
  let lastError: unknown;
  const tryPath = (p: string) => {
    tried.push(p);
    if (addon || !existsSync(p)) return;
    try {
      addon = require(p) as NativeAddon;
    } catch (e) {
      lastError = e;
    }
  };
  if (explicitPaths) explicitPaths.forEach(tryPath);
  else {
    const fromEnv = process.env.STRATOSWARM_NATIVE_DIR;
    if (fromEnv) tryPath(join(fromEnv, 'stratoswarm_native.node'));
    if (!addon) {
      try {
        const bindings = require('bindings') as (opts: { bindings: string; module_root: string }) => NativeAddon;
        addon = bindings({ bindings: 'stratoswarm_native', module_root: packageRoot() });
      } catch (e) {
        lastError = e;
        // bindings lists what it tried as lines " → /path".
        const listed = String((e as Error).message ?? '').split('\n').map((l) => l.replace(/^\s*→\s*/, '').trim()).filter((l) => l.startsWith('/'));
        tried.push(...(listed.length ? listed : candidatePaths('stratoswarm_native.node')));
      }
    }
  }
  if (!addon) {
    const why = lastError instanceof Error && !/Could not locate the bindings file/.test(lastError.message) ? ` (last error: ${lastError.message})` : '';
    throw new RuntimeError(
      `load native addon: not found or not loadable; tried:\n  ${tried.join('\n  ')}${why}\n` +
        'build it with `npm run build:native` (needs g++, make, python3 and libseccomp-dev)',
      { code: 'ELOAD', step: 'none', path: tried[0], cause: lastError },
    );
  }
  const steps = addon.init(RuntimeError);
  // The step names are one closed set shared by C++ and TypeScript; a mismatch means the
  // addon was built from other sources than this library.
  if (steps.length !== STEPS.length || steps.some((s, i) => s !== STEPS[i])) {
    throw new RuntimeError(`load native addon: its step list does not match this library's (rebuild it)`, {
      code: 'ELOAD',
      step: 'none',
    });
  }
  if (!explicitPaths) loaded = addon;
  return addon;
}

/** The spawner executable, first existing candidate. */
export function spawnerPath(): string {
  const paths = candidatePaths('stratoswarm-spawner');
  const found = paths.find((p) => existsSync(p));
  if (!found) {
    throw new RuntimeError(`spawner executable not found; tried:\n  ${paths.join('\n  ')}\nbuild it with \`npm run build:native\``, {
      code: 'ELOAD',
      step: 'spawner',
      path: paths[0],
    });
  }
  return found;
}

/** The init for containers run with `init(true)` (native/init/init.c), first existing candidate. */
export function initPath(): string {
  const paths = candidatePaths('stratoswarm-init');
  const found = paths.find((p) => existsSync(p));
  if (!found) {
    throw new RuntimeError(`init: the init executable was not found; tried:\n  ${paths.join('\n  ')}\nbuild it with \`npm run build:native\``, {
      code: 'ELOAD',
      step: 'config',
      path: paths[0],
    });
  }
  return found;
}

/** The process an OCI engine waits for (native/oci/keeper.c), first existing candidate. */
export function keeperPath(): string {
  const paths = candidatePaths('stratoswarm-oci-keeper');
  const found = paths.find((p) => existsSync(p));
  if (!found) {
    throw new RuntimeError(`the OCI keeper executable was not found; tried:\n  ${paths.join('\n  ')}\nbuild it with \`npm run build:native\``, { code: 'ELOAD', step: 'config', path: paths[0] });
  }
  return found;
}
