/**
 * The cgroup driver against the real kernel: limits enforced on plain host processes, placed in
 * a test-only parent (stratoswarm-test-<random>) that is removed at the end. Needs root and a
 * mounted cgroup hierarchy; on this project's CI VM that is v1 (hybrid host). Each check reads
 * back the file of the hierarchy the driver chose for that controller (v1 or v2), so a pure v2
 * host runs them too.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RuntimeError } from '../../src/errors.js';
import { NativeKernel, type Kernel } from '../../src/kernel/kernel.js';
import { CgroupDriver, blockDeviceFor, readCgroupLayout, type CgroupLayout, type Resources } from '../../src/isolation/index.js';
import type { Controller } from '../../src/isolation/layout.js';
import { skipBecause, skipTest } from '../helpers/skip.js';

const MiB = 1024 * 1024;
const PARENT = `stratoswarm-test-${randomBytes(4).toString('hex')}`;

function whyNot(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root (cgroup directories need root)';
  if (!existsSync('/sys/fs/cgroup')) return 'no /sys/fs/cgroup';
  try {
    new NativeKernel();
  } catch (e) {
    return `native addon not loadable (${(e as Error).message.split('\n')[0]})`;
  }
  return undefined;
}

const reason = whyNot();
let kernel: Kernel;
let layout: CgroupLayout;
let driver: CgroupDriver;
let enforcing = '';
if (!reason) {
  kernel = new NativeKernel();
  layout = readCgroupLayout(kernel);
  const need = ['cpu', 'cpuacct', 'memory', 'pids', 'freezer', 'cpuset'] as const;
  const missing = need.filter((c) => !layout.controllers[c]);
  if (missing.length > 0) enforcing = `controllers ${missing.join(', ')} not mounted`;
  else driver = new CgroupDriver(kernel, layout, PARENT, { destroyTimeoutMs: 3000 });
}
const skip = reason ?? (enforcing || undefined);
if (skip) console.log(`skipping cgroup isolation integration tests: ${skip}`);
const itRoot = it.skipIf(skip !== undefined); // reason: `skip`, printed above

/** Whether the driver drives `c` through v1 here (false: through the unified v2 tree). */
const onV1 = (c: Controller) => layout.controllers[c]!.version === 1;

/** Container `id`'s file for controller `c`: named `v1` on a v1 hierarchy, `v2` on the unified tree. */
function cgFile(c: Controller, id: string, v1: string, v2: string): string {
  return `${layout.controllers[c]!.mount}/${PARENT}/${id}/${onV1(c) ? v1 : v2}`;
}

const children: ChildProcess[] = [];
const ids = new Set<string>();
let seq = 0;

function create(r: Resources): { id: string; procsFiles: string[] } {
  const id = `t${++seq}`;
  ids.add(id);
  return { id, ...driver.create(id, r) };
}

/** Starts `argv` held on stdin, moves it into the cgroup, then lets it go. */
function spawnIn(procsFiles: string[], argv: string[]): ChildProcess & { exited: Promise<{ code: number | null; signal: string | null }> } {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'ignore', 'ignore'] });
  children.push(child);
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  for (const f of procsFiles) kernel.cgroupWrite(f, String(child.pid));
  child.stdin!.write('go\n');
  return Object.assign(child, { exited });
}

const shell = (script: string) => ['sh', '-c', `read go; ${script}`];
const BUSY_TWO = shell('(while :; do :; done) & while :; do :; done');

/** CPU cores the container used over `ms`, from cpuacct usage over wall time. */
async function coresUsed(id: string, ms: number): Promise<number> {
  const u0 = driver.stats(id).cpu!.usageNs;
  const t0 = process.hrtime.bigint();
  await sleep(ms);
  const u1 = driver.stats(id).cpu!.usageNs;
  const t1 = process.hrtime.bigint();
  return (u1 - u0) / Number(t1 - t0);
}

/** Kills this test's own processes in a cgroup (thawed first: a frozen task cannot die). */
async function evacuate(id: string): Promise<void> {
  try {
    await driver.thaw(id);
  } catch {
    // Not frozen, or already gone.
  }
  for (let i = 0; i < 100; i++) {
    let pids: number[];
    try {
      pids = driver.pids(id);
    } catch {
      return;
    }
    if (pids.length === 0) return;
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // exited meanwhile
      }
    }
    await sleep(20);
  }
}

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (skip) return;
  for (const id of ids) {
    await evacuate(id);
    await driver.destroy(id).catch((e) => console.error(`cleanup of ${id}: ${(e as Error).message}`));
  }
  ids.clear();
});

afterAll(async () => {
  if (skip) return;
  for (const id of driver.list()) {
    await evacuate(id);
    await driver.destroy(id).catch(() => {});
  }
  driver.removeParent();
  for (const h of new Set(Object.values(layout.controllers).map((b) => b.mount))) {
    expect(existsSync(`${h}/${PARENT}`), `${h}/${PARENT} left behind`).toBe(false);
  }
});

describe('isolation (real cgroups)', () => {
  beforeAll(() => {
    if (!skip) console.log(`cgroup layout: ${JSON.stringify(layout.controllers)}; parent ${PARENT}`);
  });

  itRoot('memory 256 MiB: a process allocating 1 GiB is OOM-killed and counted; the test process goes on', async () => {
    const { id, procsFiles } = create({ memoryLimit: 256 * MiB, memorySwap: 256 * MiB });
    expect(kernel.readFile(cgFile('memory', id, 'memory.limit_in_bytes', 'memory.max')).trim()).toBe(String(256 * MiB));
    // Buffer.alloc(n, 1) writes every byte, so every page is really charged.
    const hog = spawnIn(procsFiles, [
      process.execPath,
      '-e',
      "process.stdin.once('data', () => { const a = []; for (let i = 0; i < 64; i++) a.push(Buffer.alloc(16 << 20, 1)); process.exit(0); })",
    ]);
    const { signal } = await hog.exited;
    expect(signal).toBe('SIGKILL');
    expect(driver.oomKills(id)).toBeGreaterThanOrEqual(1);
    const s = driver.stats(id);
    expect(s.memory!.oomKills).toBeGreaterThanOrEqual(1);
    expect(s.memory!.limitBytes).toBe(256 * MiB);
    expect(s.memory!.peakBytes).toBeGreaterThan(200 * MiB);
    expect(s.memory!.peakBytes).toBeLessThanOrEqual(256 * MiB);
    // This process was never in that cgroup and is unaffected.
    expect(Buffer.alloc(64 * MiB, 1).length).toBe(64 * MiB);
  });

  itRoot('cpu 0.5 core holds two busy loops to 0.5 ± 15 %; update to 1 core gives ≈ 1', async () => {
    const { id, procsFiles } = create({ cpuLimit: 0.5 });
    spawnIn(procsFiles, BUSY_TWO);
    await sleep(300);
    const half = await coresUsed(id, 3000);
    expect(half).toBeGreaterThan(0.5 * 0.85);
    expect(half).toBeLessThan(0.5 * 1.15);
    driver.update(id, { cpuLimit: 1 });
    await sleep(300);
    const one = await coresUsed(id, 3000);
    expect(one).toBeGreaterThan(0.85);
    expect(one).toBeLessThan(1.15);
    const s = driver.stats(id).cpu!;
    expect(s.throttledPeriods).toBeGreaterThan(0);
    expect(s.throttledNs).toBeGreaterThan(0);
    console.log(`cpu: limit 0.5 → ${half.toFixed(3)} cores, limit 1 → ${one.toFixed(3)} cores`);
  });

  itRoot('pids 64: a fork bomb is contained', async () => {
    const { id, procsFiles } = create({ pidsLimit: 64 });
    const bomb = spawnIn(procsFiles, shell('i=0; while [ $i -lt 300 ]; do sleep 60 & i=$((i+1)); done; wait'));
    await Promise.race([bomb.exited, sleep(3000)]);
    const s = driver.stats(id).pids!;
    expect(s.limit).toBe(64);
    expect(s.current).toBeLessThanOrEqual(64);
    expect(s.current).toBeGreaterThan(32); // it did fork, up to the wall
    expect(driver.pids(id).length).toBeLessThanOrEqual(64);
    const events = kernel.readFile(`${layout.controllers.pids!.mount}/${PARENT}/${id}/pids.events`);
    expect(Number(/max (\d+)/.exec(events)?.[1])).toBeGreaterThan(0); // forks the limit refused
  });

  itRoot('freeze stops CPU use; thaw resumes it', async () => {
    const { id, procsFiles } = create({ cpuLimit: 1 });
    spawnIn(procsFiles, BUSY_TWO);
    await sleep(200);
    const t0 = performance.now();
    await driver.freeze(id);
    const freezeMs = performance.now() - t0;
    if (onV1('freezer')) expect(kernel.readFile(cgFile('freezer', id, 'freezer.state', '')).trim()).toBe('FROZEN');
    else expect(kernel.readFile(cgFile('freezer', id, '', 'cgroup.events'))).toMatch(/^frozen 1$/m);
    const frozen = await coresUsed(id, 1000);
    expect(frozen).toBeLessThan(0.01);
    await driver.thaw(id);
    const thawed = await coresUsed(id, 1000);
    expect(thawed).toBeGreaterThan(0.5);
    console.log(`freeze took ${freezeMs.toFixed(2)} ms; frozen ${frozen.toFixed(4)} cores, thawed ${thawed.toFixed(3)} cores`);
  });

  itRoot('an update with one invalid value (cpuset "99") changes nothing', async () => {
    const { id } = create({ cpuLimit: 0.5, pidsLimit: 32 });
    const cpuset = cgFile('cpuset', id, 'cpuset.cpus', 'cpuset.cpus');
    const files = [
      ...(onV1('cpu') ? [cgFile('cpu', id, 'cpu.cfs_quota_us', ''), cgFile('cpu', id, 'cpu.cfs_period_us', '')] : [cgFile('cpu', id, '', 'cpu.max')]),
      cgFile('pids', id, 'pids.max', 'pids.max'),
      cpuset,
      cgFile('memory', id, 'memory.limit_in_bytes', 'memory.max'),
    ];
    const before = files.map((f) => kernel.readFile(f));
    let err: unknown;
    try {
      driver.update(id, { cpuLimit: 0.7, memoryLimit: 300 * MiB, pidsLimit: 50, cpusetCpus: '99' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RuntimeError);
    // cpulist_parse() answers ERANGE for a cpu past nr_cpu_ids (EINVAL for a malformed list).
    expect(err).toMatchObject({ errno: expect.stringMatching(/^(ERANGE|EINVAL)$/), syscall: 'write', path: cpuset, containerId: id });
    expect((err as Error).message).toMatch(new RegExp(`^update resources of "${id}": write \`cpuset.cpus\`: (ERANGE|EINVAL) \\(value "99"\\)$`));
    expect(files.map((f) => kernel.readFile(f))).toEqual(before);
    expect(before[0]!.trim()).toBe(onV1('cpu') ? '50000' : '50000 100000');
  });

  itRoot('destroy removes every directory; list() finds leftovers and cleanup removes them', async () => {
    const a = create({});
    const b = create({ pidsLimit: 10 });
    // A leftover from a crashed create: a directory in one hierarchy only.
    const half = `${layout.controllers.pids!.mount}/${PARENT}/half-made`;
    kernel.mkdir(half);
    ids.add('half-made');
    expect(driver.list()).toEqual(expect.arrayContaining([a.id, b.id, 'half-made']));
    const dirs = [...driver.dirs(a.id), ...driver.dirs(b.id), half];
    for (const id of driver.list()) await driver.destroy(id);
    expect(driver.list()).toEqual([]);
    for (const d of dirs) expect(existsSync(d), d).toBe(false);
  });

  itRoot('destroy kills nothing: a live process makes it EBUSY naming the pid', async () => {
    const { id, procsFiles } = create({});
    const sleeper = spawnIn(procsFiles, shell('sleep 60'));
    await sleep(50);
    const d = new CgroupDriver(kernel, layout, PARENT, { destroyTimeoutMs: 150 });
    await expect(d.destroy(id)).rejects.toMatchObject({ code: 'EBUSY', message: expect.stringContaining(String(sleeper.pid)) });
    expect(sleeper.exitCode).toBeNull();
    expect(sleeper.signalCode).toBeNull();
  });

  itRoot('stats on a live container: one call returns every section', async () => {
    const { id, procsFiles } = create({ cpuLimit: 0.2, memoryLimit: 64 * MiB, pidsLimit: 16 });
    // Pages charged before the move stay with the old cgroup, so it allocates (a 4 MB shell
    // variable) after joining.
    spawnIn(procsFiles, shell('x=$(head -c 4000000 /dev/zero | tr "\\0" a); while :; do :; done'));
    // Then until the allocation's pipeline (head, tr, a subshell) is gone: slow on a loaded host.
    await sleep(500);
    for (let i = 0; i < 100 && driver.stats(id).pids!.current !== 1; i++) await sleep(100);
    const s = driver.stats(id);
    expect(s.cpu!.usageNs).toBeGreaterThan(0);
    expect(s.memory!.currentBytes).toBeGreaterThan(0);
    expect(s.memory!.limitBytes).toBe(64 * MiB);
    expect(s.pids).toEqual({ current: 1, limit: 16 });
    // It reads and writes no disk: the section is there, with counts that are whole numbers.
    expect(s.blockIo).toEqual({ readBytes: expect.any(Number), writeBytes: expect.any(Number), readOps: expect.any(Number), writeOps: expect.any(Number) });
    for (const v of Object.values(s.blockIo!)) expect(Number.isInteger(v) && v >= 0, String(v)).toBe(true);
  });

  itRoot('block io: the root filesystem’s disk takes a throttle', async (ctx) => {
    if (!layout.controllers.blkio) {
      skipTest(ctx, 'block io throttle check', 'no blkio (v1) or io (v2) controller here');
    }
    let device = '';
    try {
      device = blockDeviceFor('/');
    } catch (e) {
      skipTest(ctx, 'block io throttle check', (e as Error).message);
    }
    const { id } = create({ blockIo: [{ device, writeBps: 10 * MiB, readIops: 500 }] });
    if (onV1('blkio')) {
      const dir = `${layout.controllers.blkio!.mount}/${PARENT}/${id}`;
      expect(kernel.readFile(`${dir}/blkio.throttle.write_bps_device`).trim()).toBe(`${device} ${10 * MiB}`);
      expect(kernel.readFile(`${dir}/blkio.throttle.read_iops_device`).trim()).toBe(`${device} 500`);
      driver.update(id, { blockIo: [{ device, writeBps: Infinity }] });
      expect(kernel.readFile(`${dir}/blkio.throttle.write_bps_device`).trim()).toBe('');
    } else {
      const ioMax = cgFile('blkio', id, '', 'io.max');
      expect(kernel.readFile(ioMax).trim()).toBe(`${device} rbps=max wbps=${10 * MiB} riops=500 wiops=max`);
      driver.update(id, { blockIo: [{ device, writeBps: Infinity }] });
      expect(kernel.readFile(ioMax).trim()).toBe(`${device} rbps=max wbps=max riops=500 wiops=max`);
    }
  });

  itRoot('devices: deny-all plus the standard list; with no devices asked for, /dev/null opens but /dev/mem does not', async (ctx) => {
    if (!layout.controllers.devices) {
      skipTest(ctx, 'device cgroup check', 'no devices controller (v1) or v2 device program support here');
    }
    const { id, procsFiles } = create({});
    if (onV1('devices')) {
      const list = kernel.readFile(cgFile('devices', id, 'devices.list', ''));
      expect(list).toContain('c 1:3 rwm');
      expect(list).not.toContain('a *:* rwm');
    } else {
      // v2: an eBPF program, which cannot be read back as a list; the probe below shows it.
      console.warn('devices.list check skipped: v2 has no devices.list (the rules are an eBPF program); checking by opening devices only');
    }
    const probe = spawnIn(procsFiles, shell('echo x > /dev/null && ! head -c1 /dev/mem >/dev/null 2>&1'));
    expect((await probe.exited).code).toBe(0);
  });

  itRoot('hugetlb on this host: v2 holds it, so it works only if the unified root delegates it', (ctx) => {
    const h = layout.controllers.hugetlb;
    const why = !h ? 'no hugetlb controller on either hierarchy' : h.version !== 2 ? `hugetlb is held by a v1 hierarchy (${h.mount}), not v2` : undefined;
    if (why) skipTest(ctx, 'hugetlb v2 delegation check', why);
    const delegated = kernel.readFile(`${h!.mount}/cgroup.subtree_control`).includes('hugetlb');
    const attempt = () => create({ hugetlb: [{ pageSize: '2MB', limit: 8 * MiB }] });
    if (delegated) expect(attempt).not.toThrow();
    else expect(attempt).toThrow(expect.objectContaining({ code: 'EUNSUPPORTED' }));
  });
});
