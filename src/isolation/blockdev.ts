/**
 * The block device a path's data lands on, as "major:minor" for blockIo limits. Throttling is
 * per whole disk (blk-cgroup refuses a partition with ENODEV), and an overlay's writes go to
 * the filesystem of its upper directory.
 */
import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { RuntimeError } from '../errors.js';
import { parseMountinfo, type MountEntry } from './layout.js';

export interface BlockDeviceProbe {
  mountinfo(): string;
  realpath(path: string): string;
  /** st_dev of `path` as "major:minor". */
  deviceOf(path: string): string;
  /** st_rdev of the device node `node` as "major:minor". */
  deviceNumberOf(node: string): string;
  /** The whole disk holding `dev` if it is a partition, else `dev`. */
  wholeDisk(dev: string): string;
}

/** glibc's gnu_dev_major/minor: the 64-bit dev_t splits 12+20 bits of major, 20+12 of minor. */
export function splitDev(dev: bigint): string {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & 0xfffff000n);
  const minor = (dev & 0xffn) | ((dev >> 12n) & 0xffffff00n);
  return `${major}:${minor}`;
}

export const hostBlockProbe: BlockDeviceProbe = {
  mountinfo: () => fs.readFileSync('/proc/self/mountinfo', 'utf8'),
  realpath: (p) => fs.realpathSync(p),
  deviceOf: (p) => splitDev(fs.statSync(p, { bigint: true }).dev),
  deviceNumberOf: (node) => splitDev(fs.statSync(node, { bigint: true }).rdev),
  wholeDisk: (dev) => {
    const sys = `/sys/dev/block/${dev}`;
    if (!fs.existsSync(`${sys}/partition`)) return dev;
    // /sys/dev/block/M:m links to .../block/<disk>/<partition>; the disk is the directory above.
    return fs.readFileSync(`${dirname(fs.realpathSync(sys))}/dev`, 'utf8').trim();
  },
};

function notFound(message: string, path: string, cause?: unknown): RuntimeError {
  return new RuntimeError(message, { code: 'ENOTFOUND', step: 'cgroup', path, cause });
}

function mountFor(entries: MountEntry[], dev: string, real: string): MountEntry | undefined {
  const candidates = entries.filter((m) => m.device === dev);
  const under = (mp: string) => mp === '/' || real === mp || real.startsWith(`${mp}/`);
  // The deepest mount point containing the path; the same device may be mounted several times.
  return candidates.filter((m) => under(m.mountPoint)).sort((a, b) => b.mountPoint.length - a.mountPoint.length)[0] ?? candidates[0];
}

/** "major:minor" of the whole disk that stores `path`'s data. */
export function blockDeviceFor(path: string, probe: BlockDeviceProbe = hostBlockProbe, depth = 0): string {
  let real: string;
  let dev: string;
  try {
    real = probe.realpath(path);
    dev = probe.deviceOf(real);
  } catch (e) {
    throw notFound(`block device of ${path}: cannot stat it`, path, e);
  }
  const mount = mountFor(parseMountinfo(probe.mountinfo()), dev, real);
  if (mount?.fsType === 'overlay') {
    const opt = (k: string) => mount.superOptions.find((o) => o.startsWith(`${k}=`))?.slice(k.length + 1);
    const next = opt('upperdir') ?? opt('lowerdir')?.split(':')[0];
    if (next === undefined || depth > 4) throw notFound(`block device of ${path}: overlay at ${mount.mountPoint} has no upper or lower dir`, path);
    return blockDeviceFor(next, probe, depth + 1);
  }
  if (dev.startsWith('0:')) {
    // Major 0 is an anonymous device (tmpfs, proc; btrfs subvolumes): the data's disk, if any, is the mount source.
    if (mount && mount.source.startsWith('/dev/')) return probe.wholeDisk(probe.deviceNumberOf(mount.source));
    throw notFound(`block device of ${path}: it is on ${mount ? `${mount.fsType} (${mount.source})` : `device ${dev}`}, which has no block device`, path);
  }
  return probe.wholeDisk(dev);
}
