/**
 * The driver's v2 paths on the real kernel, on any host with a cgroup2 mount (on the hybrid
 * CI VM, the nearly empty unified tree): the eBPF device program (native/devices_bpf.cc,
 * compiled here into a small harness until the addon exports it) and the core freezer
 * (cgroup.freeze / cgroup.events).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { RuntimeError } from '../../src/errors.js';
import { NativeKernel, type Kernel } from '../../src/kernel/kernel.js';
import { skipTest } from '../helpers/skip.js';
import {
  CgroupDriver,
  DEFAULT_DEVICE_RULES,
  readCgroupLayout,
  type CgroupLayout,
  type DeviceProgramLoader,
  type DeviceRule,
} from '../../src/isolation/index.js';

const PARENT = `stratoswarm-test-${randomBytes(4).toString('hex')}`;
const HARNESS_SRC = `#include "devices_bpf.h"
#include <cstdio>
#include <sstream>
// harness <cgroupDir> <allow|deny>:<a|b|c>:<major|*>:<minor|*>:<access>...
int main(int argc, char** argv) {
  std::vector<ss::devices::DeviceRule> rules;
  for (int i = 2; i < argc; i++) {
    std::stringstream in(argv[i]);
    std::string f[5];
    for (auto& s : f) std::getline(in, s, ':');
    ss::devices::DeviceRule r;
    r.allow = f[0] == "allow";
    r.type = f[1].empty() ? '?' : f[1][0];
    r.major = f[2] == "*" ? -1 : std::stoll(f[2]);
    r.minor = f[3] == "*" ? -1 : std::stoll(f[3]);
    r.access = f[4];
    rules.push_back(r);
  }
  std::string err;
  int rc = ss::devices::attachDeviceProgram(argv[1], rules, &err);
  if (rc != 0) { std::printf("%d %s\\n", rc, err.c_str()); return 1; }
  return 0;
}
`;

let kernel!: Kernel;
let layout!: CgroupLayout;
let driver: CgroupDriver;
let work = '';

function setup(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root';
  try {
    kernel = new NativeKernel();
  } catch (e) {
    return `native addon not loadable (${(e as Error).message.split('\n')[0]})`;
  }
  const real = readCgroupLayout(kernel);
  if (!real.v2) return 'no cgroup2 hierarchy mounted';
  if (spawnSync('g++', ['--version']).status !== 0) return 'no g++ to build the device-program harness';
  work = mkdtempSync(join(tmpdir(), 'ss-bpf-'));
  writeFileSync(join(work, 'harness.cc'), HARNESS_SRC);
  const native = resolve(dirname(fileURLToPath(import.meta.url)), '../../native');
  const cc = spawnSync('g++', ['-std=c++17', '-O2', '-Wall', `-I${native}`, join(native, 'devices_bpf.cc'), join(work, 'harness.cc'), '-o', join(work, 'harness')], {
    encoding: 'utf8',
  });
  if (cc.status !== 0) throw new Error(`building the harness failed:\n${cc.stderr}`);
  // Only what v2 can do here: devices and freezer live in the v2 core, no controller needed.
  const mount = real.v2.mount;
  layout = { v1: {}, v2: { mount, controllers: [] }, controllers: { devices: { version: 2, mount }, freezer: { version: 2, mount } } };
  return undefined;
}

const harnessLoader: DeviceProgramLoader = {
  attachDeviceProgram(dir: string, rules: readonly DeviceRule[]) {
    const args = rules.map((r) => `${r.allow ? 'allow' : 'deny'}:${r.type}:${r.major ?? '*'}:${r.minor ?? '*'}:${r.access}`);
    const res = spawnSync(join(work, 'harness'), [dir, ...args], { encoding: 'utf8' });
    if (res.status !== 0) throw new RuntimeError(`attach device program: ${res.stdout.trim()}`, { code: 'ESYSCALL', step: 'cgroup', path: dir });
  },
};

const skip = setup();
if (skip) console.log(`skipping cgroup v2 device-program and freezer tests: ${skip}`);
else driver = new CgroupDriver(kernel, layout, PARENT, { devicePrograms: harnessLoader });
// Each test is skipped with the reason printed above (skip holds it).
const itRoot = it.skipIf(skip !== undefined); // reason: `skip`

const children: ChildProcess[] = [];
const ids = new Set<string>();

/** Runs `script` inside the container's v2 cgroup; resolves with its exit code and stderr. */
async function runIn(id: string, script: string): Promise<{ code: number | null; stderr: string }> {
  const child = spawn('sh', ['-c', `read go; ${script}`], { stdio: ['pipe', 'ignore', 'pipe'] });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  for (const dir of driver.dirs(id)) kernel.cgroupWrite(`${dir}/cgroup.procs`, String(child.pid));
  child.stdin!.write('go\n');
  return { code: await done, stderr };
}

/**
 * /dev/kmsg (c 1:11): a node root may open for reading and writing that the default rules do
 * not allow. (The CI VM's sandbox refuses even root an open of /dev/vda, so a disk is no control.)
 */
const KMSG = { node: '/dev/kmsg', major: 1, minor: 11 };
const opens = (mode: '<' | '<>') => spawnSync('sh', ['-c', `exec 3${mode} ${KMSG.node}`]).status === 0;

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (skip) return;
  for (const id of ids) {
    await driver.thaw(id).catch(() => {});
    for (const p of driver.pids(id)) process.kill(p, 'SIGKILL');
    await driver.destroy(id).catch((e) => console.error(`cleanup of ${id}: ${(e as Error).message}`));
  }
  ids.clear();
});

afterAll(() => {
  if (skip) return;
  driver.removeParent();
  expect(existsSync(`${layout.v2!.mount}/${PARENT}`)).toBe(false);
  rmSync(work, { recursive: true, force: true });
});

describe('isolation v2 (real cgroup2)', () => {
  itRoot('the default device program: /dev/null and /dev/zero open', async () => {
    ids.add('dev1');
    driver.create('dev1', {});
    const ok = await runIn('dev1', 'echo x > /dev/null && head -c1 /dev/zero > /dev/null');
    expect(ok.code, ok.stderr).toBe(0);
  });

  itRoot('the default device program: /dev/kmsg does not open', async (ctx) => {
    if (!opens('<')) {
      skipTest(ctx, '/dev/kmsg denial check', `${KMSG.node} cannot be opened even outside a container here`);
    }
    ids.add('dev1k');
    driver.create('dev1k', {});
    const denied = await runIn('dev1k', `exec 3< ${KMSG.node}`);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/Operation not permitted/);
  });

  itRoot('update replaces the program (no stale program keeps denying)', async (ctx) => {
    if (!opens('<') || !opens('<>')) {
      skipTest(ctx, 'device program update check', `${KMSG.node} cannot be opened read-write outside a container here`);
    }
    ids.add('dev2');
    driver.create('dev2', {});
    expect((await runIn('dev2', `exec 3< ${KMSG.node}`)).code).not.toBe(0);
    driver.update('dev2', { devices: [...DEFAULT_DEVICE_RULES, { allow: true, type: 'c', major: KMSG.major, minor: KMSG.minor, access: 'r' }] });
    const read = await runIn('dev2', `exec 3< ${KMSG.node}`);
    expect(read.code, read.stderr).toBe(0);
    // Read was granted, write was not.
    expect((await runIn('dev2', `exec 3<> ${KMSG.node}`)).code).not.toBe(0);
    driver.update('dev2', { devices: [...DEFAULT_DEVICE_RULES] });
    expect((await runIn('dev2', `exec 3< ${KMSG.node}`)).code).not.toBe(0);
  });

  itRoot('a later deny rule wins over an earlier allow (last match decides)', async () => {
    ids.add('dev3');
    driver.create('dev3', {
      devices: [
        { allow: true, type: 'a', access: 'rwm' },
        { allow: false, type: 'c', major: 1, minor: 5, access: 'r' },
      ],
    });
    expect((await runIn('dev3', 'echo x > /dev/null && echo x > /dev/zero')).code).toBe(0);
    const r = await runIn('dev3', 'head -c1 /dev/zero > /dev/null');
    expect(r.code).not.toBe(0);
  });

  itRoot('the v2 freezer: cgroup.freeze stops a busy loop, thaw resumes it', async () => {
    ids.add('frz');
    driver.create('frz', { devices: [{ allow: true, type: 'a', access: 'rwm' }] });
    const child = spawn('sh', ['-c', 'read go; while :; do :; done'], { stdio: ['pipe', 'ignore', 'ignore'] });
    children.push(child);
    for (const dir of driver.dirs('frz')) kernel.cgroupWrite(`${dir}/cgroup.procs`, String(child.pid));
    child.stdin!.write('go\n');
    const ticks = () => {
      const f = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks
    };
    await sleep(200);
    await driver.freeze('frz');
    expect(readFileSync(`${driver.dirs('frz')[0]}/cgroup.events`, 'utf8')).toContain('frozen 1');
    const a = ticks();
    await sleep(500);
    expect(ticks() - a).toBeLessThanOrEqual(1);
    await driver.thaw('frz');
    const b = ticks();
    await sleep(500);
    expect(ticks() - b).toBeGreaterThan(10);
  });

  itRoot('a loader error surfaces as the create error and nothing is left', () => {
    const failing = new CgroupDriver(kernel, layout, PARENT, {
      devicePrograms: {
        attachDeviceProgram: () => {
          throw new RuntimeError('bpf(BPF_PROG_ATTACH): EPERM', { code: 'ESYSCALL', errno: 'EPERM' });
        },
      },
    });
    expect(() => failing.create('nope', {})).toThrow(expect.objectContaining({ errno: 'EPERM', message: 'create cgroup of "nope": bpf(BPF_PROG_ATTACH): EPERM' }));
    expect(failing.list()).not.toContain('nope');
  });

  itRoot('the C++ rule check refuses a bad rule with EINVAL', () => {
    const dir = `${layout.v2!.mount}/${PARENT}`;
    kernel.mkdir(dir);
    const out = spawnSync(join(work, 'harness'), [dir, 'allow:a:1:*:rwm'], { encoding: 'utf8' });
    expect(out.status).toBe(1);
    expect(out.stdout).toMatch(/^22 devices\[0\]: type a takes no major or minor/);
  });
});
