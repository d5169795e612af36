/**
 * OCI bundles and the OCI command line for tests: a busybox rootfs made from the host's
 * static busybox, a config.json from `stratoswarm-oci spec` changed per test, a private
 * --root, and a wrapper script engines can be pointed at (it adds that --root, which
 * engines do not pass on every call).
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ROOT = join(import.meta.dirname, '..', '..');
export const OCI_CLI = join(ROOT, 'dist/src/oci/main.js');
/** The native front end (native/oci/front.c) with its resident server, when built. */
export const OCI_FRONT = join(ROOT, 'build/Release/stratoswarm-oci');
const BUSYBOX = ['/bin/busybox', '/usr/bin/busybox'].find((p) => fs.existsSync(p));

export function busyboxMissing(): string | undefined {
  return BUSYBOX ? undefined : 'needs a static busybox (Debian busybox-static)';
}

function newest(dir: string): number {
  let m = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    m = Math.max(m, e.isDirectory() ? newest(p) : fs.statSync(p).mtimeMs);
  }
  return m;
}

/** Compiles the TypeScript when dist/ is missing or older than src/. */
export function ensureBuilt(): void {
  if (!fs.existsSync(OCI_CLI) || fs.statSync(OCI_CLI).mtimeMs < newest(join(ROOT, 'src'))) {
    const r = spawnSync(join(ROOT, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], { cwd: ROOT, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`tsc failed: ${r.stdout}${r.stderr}`);
  }
  fs.chmodSync(OCI_CLI, 0o755);
}

/** A directory with a busybox root: /bin/busybox and a link per applet the tests use. */
export function makeRootfs(dir: string): string {
  fs.mkdirSync(join(dir, 'bin'), { recursive: true });
  for (const d of ['proc', 'sys', 'dev', 'tmp', 'etc', 'root']) fs.mkdirSync(join(dir, d), { recursive: true });
  fs.copyFileSync(BUSYBOX!, join(dir, 'bin/busybox'));
  fs.chmodSync(join(dir, 'bin/busybox'), 0o755);
  for (const a of ['sh', 'true', 'false', 'cat', 'echo', 'sleep', 'hostname', 'id', 'ls', 'ps', 'grep', 'touch', 'mount', 'stat', 'head', 'wc', 'env', 'nproc', 'tr', 'readlink']) {
    fs.symlinkSync('busybox', join(dir, 'bin', a));
  }
  fs.writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n');
  fs.writeFileSync(join(dir, 'etc/group'), 'root:x:0:\nnobody:x:65534:\n');
  return dir;
}

export interface OciEnv {
  root: string;
  dir: string;
  cgroupParent: string;
  /** An executable that runs the OCI CLI (the native front end when built) with this env's --root: what engines are pointed at. */
  wrapper: string;
  /** The busybox rootfs the bundles use. */
  rootfs: string;
  run(args: string[], opts?: { input?: string; stdio?: 'pipe' | 'ignore' }): SpawnSyncReturns<string>;
  /**
   * `create` with its output in a file, not a pipe: the process the engine waits for keeps
   * the caller's pipes open as long as the container runs.
   */
  create(id: string, bundle: string): { status: number | null; stderr: string };
  /** The environment the calls run with (the test's cgroup parent). */
  env: NodeJS.ProcessEnv;
  /** A bundle whose config.json is `spec`'s with `change` applied. */
  bundle(name: string, change: (c: Record<string, any>) => void): string;
  cleanup(): void;
}

export function ociEnv(): OciEnv {
  ensureBuilt();
  const dir = fs.mkdtempSync(join(tmpdir(), 'ss-oci-'));
  const root = join(dir, 'r');
  fs.mkdirSync(root);
  const cgroupParent = `stratoswarm-oci-test-${process.pid}`;
  const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('STRATOSWARM_'))), STRATOSWARM_CGROUP_PARENT: cgroupParent };
  const wrapper = join(dir, 'stratoswarm-oci');
  // An engine's own --root (the containerd shim always passes one) gives way to the test's.
  fs.writeFileSync(
    wrapper,
    `#!/bin/bash\nargs=()\nwhile [ $# -gt 0 ]; do case "$1" in --root) shift 2;; --root=*) shift;; *) args+=("$1"); shift;; esac; done\n` +
      `STRATOSWARM_CGROUP_PARENT=${cgroupParent} exec ${fs.existsSync(OCI_FRONT) ? OCI_FRONT : `${process.execPath} ${OCI_CLI}`} --root ${root} "\${args[@]}"\n`,
    { mode: 0o755 },
  );
  const rootfs = makeRootfs(join(dir, 'rootfs'));
  const shared = { rootfs };
  const run: OciEnv['run'] = (args, opts = {}) => spawnSync(OCI_CLI, ['--root', root, ...args], { encoding: 'utf8', env, input: opts.input, timeout: 30_000 });
  return {
    ...shared,
    root,
    dir,
    cgroupParent,
    wrapper,
    run,
    env,
    create(id, bundle) {
      const out = join(dir, `${id}.err`);
      const fd = fs.openSync(out, 'w');
      try {
        const r = spawnSync(OCI_CLI, ['--root', root, 'create', '--bundle', bundle, id], { stdio: ['ignore', fd, fd], env, timeout: 30_000 });
        return { status: r.status, stderr: fs.readFileSync(out, 'utf8') };
      } finally {
        fs.closeSync(fd);
      }
    },
    bundle(name, change) {
      const b = join(dir, name);
      fs.mkdirSync(b);
      const r = spawnSync(OCI_CLI, ['spec'], { cwd: b, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`spec: ${r.stderr}`);
      const c = JSON.parse(fs.readFileSync(join(b, 'config.json'), 'utf8'));
      c.root.path = rootfs;
      change(c);
      fs.writeFileSync(join(b, 'config.json'), JSON.stringify(c, null, 2));
      return b;
    },
    cleanup() {
      for (const d of fs.readdirSync(root)) {
        const state = join(root, d, 'state.json');
        if (!fs.existsSync(state)) continue;
        const id = (JSON.parse(fs.readFileSync(state, 'utf8')) as { name: string }).name;
        const r = run(['delete', '--force', id]);
        if (r.status !== 0) console.warn(`OCI container ${id} left behind: ${r.stderr}`);
      }
      // The front end's resident server of this root, if one was started.
      if (fs.existsSync(join(root, 'oci.sock')) && fs.existsSync(OCI_FRONT)) spawnSync(OCI_FRONT, ['--root', root, 'server-stop'], { timeout: 10_000 });
      // Every container is gone: the spawner is stopped and the test's cgroup parent removed.
      const sock = join(root, 'spawner.sock');
      if (fs.existsSync(sock)) spawnSync(process.execPath, ['-e', SHUTDOWN, root, cgroupParent], { timeout: 10_000 });
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
    },
  };
}

const SHUTDOWN = `
import(${JSON.stringify(join(ROOT, 'dist/src/runtime.js'))}).then(async ({ Runtime, runtimeParts }) => {
  const r = new Runtime({ stateRoot: process.argv[1], imageRoot: process.argv[1] + '/storage', cgroupParent: process.argv[2], logLevel: 'silent', env: {} });
  await r.close({ stopSpawner: true, force: true });
  try { runtimeParts(r).cgroups.removeParent(); } catch (e) { console.warn('cgroup parent left behind: ' + e.message); }
});`;

/** Removes the empty libpod_parent cgroups podman left; returns how many are left. */
export function removeLibpodParent(): number {
  let left = 0;
  for (const ctl of fs.readdirSync('/sys/fs/cgroup')) {
    const dir = join('/sys/fs/cgroup', ctl, 'libpod_parent');
    if (!fs.existsSync(dir)) continue;
    for (const sub of fs.readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory())) {
      try {
        fs.rmdirSync(join(dir, sub.name));
      } catch {
        // still in use
      }
    }
    try {
      fs.rmdirSync(dir);
    } catch {
      left++;
    }
  }
  return left;
}
