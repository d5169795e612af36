/**
 * A container's own files: the writable layer (upper and work dirs), the mount point, the
 * per-layer staging dirs of idmapped layers, and the log files its init writes to.
 */
import * as fs from 'node:fs';
import { fromNodeError } from '../errors.js';
import type { ContainerPaths } from '../plan/types.js';

export interface ContainerStorage {
  /** Makes the directories and empty log files; `owner` is the host id of the container's root. */
  create(paths: ContainerPaths, userns?: { owner: number; stagingDirs: string[] }): void;
  remove(paths: ContainerPaths): void;
}

export const hostStorage: ContainerStorage = {
  create(paths, userns) {
    try {
      // The storage dir keeps host users out; the upper dir's mode becomes the mode of the
      // container's "/", which every user inside must be able to traverse.
      for (const d of [paths.rootfs, paths.work]) fs.mkdirSync(d, { recursive: true, mode: 0o700 });
      fs.mkdirSync(paths.upper, { mode: 0o755 });
      fs.chmodSync(paths.upper, 0o755);
      fs.writeFileSync(paths.stdoutLog, '', { mode: 0o640 });
      fs.writeFileSync(paths.stderrLog, '', { mode: 0o640 });
      if (userns) {
        for (const d of userns.stagingDirs) fs.mkdirSync(d, { recursive: true, mode: 0o700 });
        // The upper dir is the container's own: its owner is the container's root, so "/"
        // inside is root's, as it is in the image.
        fs.chownSync(paths.upper, userns.owner, userns.owner);
      }
    } catch (e) {
      throw fromNodeError(e, 'storage', `make the storage of \`${paths.storageDir}\``);
    }
  },
  remove(paths) {
    fs.rmSync(paths.storageDir, { recursive: true, force: true });
  },
};
