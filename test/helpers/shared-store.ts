import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** The store with the base image that the global setup builds once per machine. */
export const SHARED_STORE = '/var/tmp/stratoswarm-test-store-v1';

/** Gives `imageRoot` the base image: a copy of the shared store's content and index. */
export function seedBaseImage(imageRoot: string): void {
  if (!existsSync(join(SHARED_STORE, 'index'))) throw new Error(`${SHARED_STORE} has no base image: run the tests through vitest (its global setup builds it), as root`);
  execFileSync('cp', ['-a', join(SHARED_STORE, 'blobs'), join(SHARED_STORE, 'layers'), join(SHARED_STORE, 'index'), imageRoot]);
}
