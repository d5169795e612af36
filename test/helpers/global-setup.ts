/**
 * Once per test run, as root: the base image in a shared store that test runtimes copy
 * (cp -a keeps owners, modes and xattrs), so each runtime's image root is its own.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { ImageStore } from '../../src/image/images.js';
import { BASE_IMAGE } from '../../src/image/base.js';
import { SHARED_STORE } from './shared-store.js';

export default async function setup(): Promise<void> {
  if (process.getuid?.() !== 0 || !existsSync('/bin/busybox')) return;
  if (new ImageStore(SHARED_STORE, 'registry.stratoswarm.io').has(BASE_IMAGE)) return;
  const tmp = mkdtempSync(`${SHARED_STORE}.tmp-`);
  await new ImageStore(tmp, 'registry.stratoswarm.io').buildBaseImage();
  rmSync(`${tmp}/tmp`, { recursive: true, force: true });
  try {
    if (existsSync(SHARED_STORE)) execFileSync('rm', ['-rf', SHARED_STORE]);
    renameSync(tmp, SHARED_STORE);
  } catch {
    rmSync(tmp, { recursive: true, force: true });
  }
}
