/**
 * Test runtimes: private state and storage roots under /tmp, a shared image root with the
 * base image built once, a spawner stopped when the test file ends.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll } from 'vitest';
import { Container } from '../../src/container/container.js';
import { Runtime, runtimeParts, type RuntimeInit } from '../../src/runtime.js';
import { seedBaseImage } from './shared-store.js';

export const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0;
export const SKIP_REASON = IS_ROOT ? '' : 'needs root (namespaces, mounts, cgroups): run the suite as root';

/** Shared across test files so the base image is built once per machine. */
export const TEST_IMAGE_ROOT = '/var/tmp/stratoswarm-test-images';

export interface TestRuntime {
  runtime: Runtime;
  stateRoot: string;
  cleanup(): Promise<void>;
}

export function testRuntime(opts: { cgroupParent?: string; init?: Omit<RuntimeInit, 'stateRoot' | 'imageRoot'> } = {}): TestRuntime {
  // Short: the spawner socket path must fit in sun_path (108 bytes).
  const stateRoot = mkdtempSync(join(tmpdir(), 'ss-'));
  const imageRoot = mkdtempSync(join('/var/tmp', 'ss-img-'));
  const runtime = new Runtime({
    stateRoot,
    imageRoot,
    cgroupParent: opts.cgroupParent ?? `stratoswarm-test-${process.pid}`,
    logger: pino({ level: 'silent' }),
    spawnerIdleMs: 30_000,
    env: {},
    ...opts.init,
  });
  // The base image, copied from the store the global setup built once.
  seedBaseImage(imageRoot);
  return {
    runtime,
    stateRoot,
    async cleanup() {
      // Whatever a failed test left behind goes the way remove() would take it.
      for (const s of await Container.list({ runtime })) {
        try {
          await (await Container.load(s.id, { runtime })).remove({ force: true });
        } catch (e) {
          console.warn(`container ${s.name} left behind by a test could not be removed: ${(e as Error).message}`);
        }
      }
      await runtime.close({ stopSpawner: true, force: true });
      // The test's own cgroup parent, once its containers are gone.
      try {
        runtimeParts(runtime).cgroups.removeParent();
      } catch (e) {
        console.warn(`cgroup parent ${runtime.options.cgroupParent} left behind: ${(e as Error).message}`);
      }
      // The spawner may still be writing an exit record of a container it killed last.
      rmSync(stateRoot, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
      rmSync(imageRoot, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
    },
  };
}

/** A test runtime for the enclosing describe: made before its tests, cleaned up after them. */
export function useTestRuntime(ready: (t: TestRuntime) => void, opts: { cgroupParent?: string } = {}): void {
  let t: TestRuntime | undefined;
  beforeAll(() => {
    t = testRuntime(opts);
    ready(t);
  });
  afterAll(async () => {
    await t?.cleanup();
  });
}

/** The first of `names` found among a container's cgroup directories, read and trimmed. */
export function cgroupFile(runtime: Runtime, id: string, names: string[]): string | undefined {
  for (const dir of runtimeParts(runtime).cgroups.dirs(id)) {
    for (const n of names) {
      try {
        return readFileSync(join(dir, n), 'utf8').trim();
      } catch {
        // another hierarchy's file
      }
    }
  }
  return undefined;
}
