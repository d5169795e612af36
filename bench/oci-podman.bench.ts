/**
 * `podman run --rm IMAGE /bin/true` with each OCI runtime, side by side in one run and
 * interleaved (so drift in the machine hits all alike): runc, crun, and stratoswarm-oci
 * (the native front end when built, else the Node entry point). Prints medians, tails and
 * ratios. crun refuses hosts whose cgroups are hybrid (v1 controllers plus a v2 mount); on
 * such a host its runs see only the v1 controllers, through a private mount namespace made
 * for each podman call (that costs it a few ms, noted in the output).
 *   node dist/bench/oci-podman.bench.js   (BENCH_N=30 for more samples)
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fmt, summarize } from './stats.js';

const ROOT = join(import.meta.dirname, '..', '..');
const N = Number(process.env.BENCH_N ?? 20);
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

function main(): void {
  const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => fs.existsSync(p));
  if (!has('podman') || !busybox || process.getuid?.() !== 0) {
    console.log('oci-podman: skipped: needs root, podman and a static busybox (Debian podman, busybox-static)');
    return;
  }
  const dir = fs.mkdtempSync(join(tmpdir(), 'ss-ocib-'));
  try {
    run(dir, busybox);
  } finally {
    spawnSync('podman', [...podmanArgs(dir), 'system', 'reset', '-f'], { stdio: 'ignore' });
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function podmanArgs(dir: string): string[] {
  return ['--root', `${dir}/root`, '--runroot', `${dir}/runroot`, '--tmpdir', `${dir}/tmp`, '--cgroup-manager', 'cgroupfs', '--events-backend', 'file', '--storage-driver', 'overlay'];
}

const hybrid = () => fs.existsSync('/sys/fs/cgroup/unified') && fs.readdirSync('/sys/fs/cgroup').some((c) => c === 'memory');
const V1_ONLY = 'mount -t tmpfs tmpfs /sys/fs/cgroup; for c in cpu cpuacct cpuset memory devices freezer blkio pids; do mkdir /sys/fs/cgroup/$c && mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c; done; mkdir /sys/fs/cgroup/systemd && mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd; exec "$@"';

function run(dir: string, busybox: string): void {
  const rootfs = join(dir, 'rootfs');
  fs.mkdirSync(join(rootfs, 'bin'), { recursive: true });
  fs.copyFileSync(busybox, join(rootfs, 'bin/busybox'));
  fs.chmodSync(join(rootfs, 'bin/busybox'), 0o755);
  for (const a of ['sh', 'true']) fs.symlinkSync('busybox', join(rootfs, 'bin', a));
  const base = podmanArgs(dir);
  const tar = spawnSync('tar', ['-C', rootfs, '-c', '.'], { maxBuffer: 64 << 20 });
  const imp = spawnSync('podman', [...base, 'import', '-', 'localhost/bench'], { input: tar.stdout, encoding: 'utf8' });
  if (imp.status !== 0) throw new Error(`podman import: ${imp.stderr}`);

  const front = join(ROOT, 'build/Release/stratoswarm-oci');
  const ours = fs.existsSync(front) ? front : join(ROOT, 'dist/src/oci/main.js');
  fs.chmodSync(ours, 0o755);
  const ociRoot = join(dir, 'oci');
  const wrapper = join(dir, 'stratoswarm-oci');
  fs.writeFileSync(wrapper, `#!/bin/sh\nexec ${ours} --root ${ociRoot} "$@"\n`, { mode: 0o755 });
  const runArgs = ['run', '--rm', '--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096', 'localhost/bench', '/bin/true'];
  const contenders: { name: string; argv: string[]; note?: string }[] = [];
  if (has('runc')) contenders.push({ name: 'runc', argv: ['podman', ...base, '--runtime', 'runc', ...runArgs] });
  if (has('crun')) {
    const argv = ['podman', ...base, '--runtime', 'crun', ...runArgs];
    contenders.push(hybrid() ? { name: 'crun', argv: ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', V1_ONLY, 'sh', ...argv], note: 'v1-only view: +1 unshare and 10 mounts per run' } : { name: 'crun', argv });
  }
  contenders.push({ name: `stratoswarm-oci (${ours === front ? 'native front end' : 'node'})`, argv: ['podman', ...base, '--runtime', wrapper, ...runArgs] });

  // Warm up each (first runs pay for page cache, podman's own state, our resident server).
  const ok = contenders.filter((c) => {
    for (let i = 0; i < 2; i++) {
      const r = spawnSync(c.argv[0]!, c.argv.slice(1), { encoding: 'utf8' });
      if (r.status !== 0) {
        console.log(`${c.name}: skipped: ${r.stderr.trim().split('\n').pop()}`);
        return false;
      }
    }
    return true;
  });
  const samples = new Map(ok.map((c) => [c.name, [] as number[]]));
  for (let i = 0; i < N; i++) {
    for (const c of ok) {
      const t0 = process.hrtime.bigint();
      const r = spawnSync(c.argv[0]!, c.argv.slice(1), { stdio: 'ignore' });
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (r.status === 0) samples.get(c.name)!.push(ms);
    }
  }
  const p50 = (name: string) => summarize(samples.get(name) ?? []).p50;
  console.log(`podman run --rm /bin/true, ${N} runs each, interleaved (ms)\n`);
  console.log('| runtime | n | p50 | p90 | p99 | × runc p50 | × crun p50 |');
  console.log('|---|---|---|---|---|---|---|');
  for (const c of ok) {
    const s = summarize(samples.get(c.name)!);
    const ratio = (ref: string) => (samples.has(ref) ? (s.p50 / p50(ref)).toFixed(2) : 'n/a');
    console.log(`| ${c.name}${c.note ? ` (${c.note})` : ''} | ${s.n} | ${fmt(s.p50)} | ${fmt(s.p90)} | ${fmt(s.p99)} | ${ratio('runc')} | ${ratio('crun')} |`);
  }
  // Our resident server (if any) goes with the temporary root.
  const sock = join(ociRoot, 'oci.sock');
  if (fs.existsSync(sock)) spawnSync(ours, ['--root', ociRoot, 'server-stop'], { stdio: 'ignore' });
}

main();
