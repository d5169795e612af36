/**
 * Driver injection without a CDI spec (the `nvidia` engine): the host driver's user-space
 * files a CUDA program needs, found the way the NVIDIA container toolkit finds them — the
 * libraries through the dynamic linker's cache (`ldconfig -p`), kept only when their real
 * file carries the driver version NVML reports (libcuda.so.550.54.15 for driver 550.54.15, so
 * a stale copy of another version is never mixed in), the utilities on the host's PATH, the
 * persistence daemon's socket and the driver's firmware. They are bound read-only into the
 * container under /usr/local/nvidia (libraries in lib64 by soname and by real name, the
 * directory NVIDIA's CUDA images put on LD_LIBRARY_PATH) and /usr/bin (utilities).
 */
import * as fs from 'node:fs';
import { basename, join } from 'node:path';

/** Compute and utility libraries of the driver (the toolkit's "compute" and "utility" sets). */
export const DRIVER_LIBRARIES = [
  'libcuda.so',
  'libcudadebugger.so',
  'libnvidia-ml.so',
  'libnvidia-cfg.so',
  'libnvidia-ptxjitcompiler.so',
  'libnvidia-nvvm.so',
  'libnvidia-gpucomp.so',
  'libnvidia-opencl.so',
  'libnvidia-allocator.so',
  'libnvidia-pkcs11.so',
] as const;

export const DRIVER_BINARIES = ['nvidia-smi', 'nvidia-debugdump', 'nvidia-persistenced', 'nvidia-cuda-mps-control', 'nvidia-cuda-mps-server'] as const;

export const CONTAINER_LIB_DIR = '/usr/local/nvidia/lib64';
export const PERSISTENCED_SOCKET = '/run/nvidia-persistenced/socket';

/** One entry of the linker cache: soname, its flags ("libc6,x86-64") and path. */
export interface LdCacheEntry {
  soname: string;
  flags: string;
  path: string;
}

/** Parses `ldconfig -p` output. */
export function parseLdconfig(text: string): LdCacheEntry[] {
  const out: LdCacheEntry[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s+(\S+) \(([^)]*)\)(?: => (\S.*))?$/.exec(line);
    if (m && m[3]) out.push({ soname: m[1]!, flags: m[2]!, path: m[3]!.trim() });
  }
  return out;
}

/** The flags of 64-bit x86 or arm libraries, as ldconfig prints them. */
function nativeArch(flags: string): boolean {
  const arch = process.arch === 'arm64' ? 'AArch64' : 'x86-64';
  return flags.split(',').includes(arch);
}

export interface DriverFiles {
  driverVersion: string | undefined;
  /** Host file → container path, read-only. */
  mounts: { source: string; target: string }[];
  /** Libraries found in the cache but left out (another driver version), for the log. */
  skipped: string[];
}

export interface DriverHost {
  realpath(path: string): string;
  exists(path: string): boolean;
  /** Directories searched for the utilities (the host's PATH). */
  binDirs: readonly string[];
  firmwareDir: string;
}

export const nodeDriverHost = (env: NodeJS.ProcessEnv = process.env): DriverHost => ({
  realpath: (p) => fs.realpathSync(p),
  exists: (p) => fs.existsSync(p),
  binDirs: (env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':').filter(Boolean),
  firmwareDir: '/lib/firmware/nvidia',
});

/**
 * The driver's files from linker-cache entries. Without a driver version (NVML did not load)
 * any version is taken, but only one real file per library.
 */
export function driverFiles(entries: readonly LdCacheEntry[], driverVersion: string | undefined, host: DriverHost): DriverFiles {
  const mounts: DriverFiles['mounts'] = [];
  const skipped: string[] = [];
  const add = (source: string, target: string) => {
    if (!mounts.some((m) => m.target === target)) mounts.push({ source, target });
  };
  for (const lib of DRIVER_LIBRARIES) {
    // The versioned soname (libcuda.so.1), not the development link (libcuda.so).
    const found = entries.filter((e) => e.soname.startsWith(`${lib}.`) && nativeArch(e.flags));
    for (const e of found) {
      let real: string;
      try {
        real = host.realpath(e.path);
      } catch {
        continue; // a cache entry whose file is gone
      }
      const version = basename(real).slice(lib.length + 1);
      if (driverVersion && version !== driverVersion) {
        skipped.push(`${e.path} (${basename(real)}, not driver ${driverVersion})`);
        continue;
      }
      if (mounts.some((m) => m.target === join(CONTAINER_LIB_DIR, e.soname))) continue;
      add(real, join(CONTAINER_LIB_DIR, basename(real)));
      add(real, join(CONTAINER_LIB_DIR, e.soname));
    }
  }
  for (const bin of DRIVER_BINARIES) {
    const dir = host.binDirs.find((d) => host.exists(join(d, bin)));
    if (dir) add(host.realpath(join(dir, bin)), `/usr/bin/${bin}`);
  }
  if (host.exists(PERSISTENCED_SOCKET)) add(PERSISTENCED_SOCKET, PERSISTENCED_SOCKET);
  if (driverVersion && host.exists(join(host.firmwareDir, driverVersion))) add(join(host.firmwareDir, driverVersion), join('/lib/firmware/nvidia', driverVersion));
  return { driverVersion, mounts, skipped };
}

/**
 * What the container's environment says about its GPUs, consistent with what it can see: the
 * UUIDs of exactly its GPUs (CUDA and NVML accept UUIDs, which stay right whatever the
 * numbering inside), or their indexes inside (0..n-1) when UUIDs are unknown.
 */
export function visibleDevicesEnv(gpus: readonly { uuid?: string | undefined }[], imageEnv: readonly string[]): string[] {
  const ids = gpus.every((g) => g.uuid) ? gpus.map((g) => g.uuid!) : gpus.map((_, i) => String(i));
  const existing = imageEnv.find((e) => e.startsWith('LD_LIBRARY_PATH='))?.slice('LD_LIBRARY_PATH='.length);
  const ldPath = existing ? `${CONTAINER_LIB_DIR}:${existing}` : CONTAINER_LIB_DIR;
  return [`NVIDIA_VISIBLE_DEVICES=${ids.join(',')}`, `CUDA_VISIBLE_DEVICES=${ids.join(',')}`, 'NVIDIA_DRIVER_CAPABILITIES=compute,utility', `LD_LIBRARY_PATH=${ldPath}`];
}
