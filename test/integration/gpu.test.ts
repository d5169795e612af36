/**
 * GPUs and CDI devices on real containers, on a host without a GPU: character devices the
 * test makes (mknod) stand for the hardware, a CDI spec describes them, the stand-in NVML
 * (test/fixtures/fake-nvml.c) reports two GPUs, and a temporary linker cache holds stand-in
 * driver libraries. Shown from inside each container: the nodes, mounts, environment and
 * hooks it was given, and that a node outside its spec cannot be opened; two containers get
 * different GPUs, a third is refused, and the assignments outlive the runtime that made them.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Container, ContainerConfig, RuntimeError } from '../../src/index.js';
import { candidatePaths } from '../../src/kernel/native.js';
import { Runtime } from '../../src/runtime.js';
import { IS_ROOT, SKIP_REASON, testRuntime, type TestRuntime } from '../helpers/runtime.js';
import { skipBecause } from '../helpers/skip.js';

const HAVE_CC = spawnSync('sh', ['-c', 'command -v cc']).status === 0;
const HAVE_TOOLS = spawnSync('sh', ['-c', 'command -v nsenter && command -v ldconfig && command -v mknod']).status === 0;
const BUILT = candidatePaths('stratoswarm_native.node').some((p) => fs.existsSync(p));
const SKIP = !IS_ROOT ? SKIP_REASON : !BUILT ? 'the addon is not built' : !HAVE_CC ? 'needs a C compiler (stand-in NVML and driver libraries)' : !HAVE_TOOLS ? 'needs nsenter, ldconfig and mknod' : '';

let root: string;
let n = 0;
// One end of a veth pair the netDevices test moves into a container and back.
const DUMMY = `ssvt${process.pid % 100000}`;
const sh = (cmd: string) => {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
};

function cfg(script: string, more: (b: ReturnType<typeof ContainerConfig.builder>) => void = () => {}) {
  const b = ContainerConfig.builder().name(`gpu${++n}-${process.pid}`).image('stratoswarm/base-agent:latest').command(['/bin/sh', '-c', script]);
  more(b);
  return b.build();
}

async function run(runtime: Runtime, c: Container): Promise<string> {
  await c.start();
  const exit = await c.wait();
  const { stdout, stderr } = c.logs();
  expect(exit.exitCode, stderr).toBe(0);
  void runtime;
  return stdout;
}

beforeAll(() => {
  if (SKIP) return;
  root = fs.mkdtempSync(join(tmpdir(), 'ss-gpu-'));
  for (const d of ['dev', 'cdi', 'cdi-none', 'lib', 'lib-old', 'bin', 'hooks', 'out', 'vendor']) fs.mkdirSync(join(root, d));
  // The GPUs' nodes with the NVIDIA driver's major (195) and the fake NVML's minors (4, 5);
  // two nodes of a real driver (misc, 10) for a vendor device: fuse (229) in the spec, hwrng
  // (183) not. 0666 as the driver makes them: a container's root is not the host's.
  sh(`cd ${root}/dev && mknod nvidia4 c 195 4 && mknod nvidia5 c 195 5 && mknod nvidiactl c 195 255 && chmod 666 *`);
  sh(`cd ${root}/vendor && mknod a c 10 229 && mknod b c 10 183 && chmod 666 a b`);
  fs.writeFileSync(join(root, 'vendor/lib.txt'), 'vendor library\n');
  const hook = (name: string, body: string) => {
    fs.writeFileSync(join(root, 'hooks', name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    return join(root, 'hooks', name);
  };
  const spec = {
    cdiVersion: '0.6.0',
    kind: 'vendor.com/dev',
    devices: [
      { name: 'a', containerEdits: { deviceNodes: [{ path: '/dev/vendor/a', hostPath: join(root, 'vendor/a') }], env: ['VENDOR_DEVICE=a'] } },
      { name: 'b', containerEdits: { deviceNodes: [{ path: '/dev/vendor/b', hostPath: join(root, 'vendor/b') }] } },
      { name: 'net', containerEdits: { netDevices: [{ hostInterfaceName: DUMMY, name: 'cdinet0' }] } },
      { name: 'rdt', containerEdits: { intelRdt: { closID: 'ss-test', l3CacheSchema: 'L3:0=ff' } } },
      { name: 'own', containerEdits: { deviceNodes: [{ path: '/dev/vendor/own', hostPath: join(root, 'vendor/a'), fileMode: 0o640, uid: 1234, gid: 4321 }] } },
    ],
    containerEdits: {
      mounts: [{ hostPath: join(root, 'vendor/lib.txt'), containerPath: '/opt/vendor/lib.txt', options: ['ro', 'bind'] }],
      additionalGids: [4242],
      hooks: [
        { hookName: 'createRuntime', path: hook('runtime', `cat > ${root}/out/create-runtime`) },
        { hookName: 'createContainer', path: hook('container', 'echo created-inside > /hook-mark'), args: ['container'] },
        { hookName: 'startContainer', path: hook('start', 'echo started-inside > /start-mark') },
        { hookName: 'poststart', path: hook('poststart', `touch ${root}/out/poststart`) },
        { hookName: 'poststop', path: hook('poststop', `cat > ${root}/out/poststop`) },
      ],
    },
  };
  fs.writeFileSync(join(root, 'cdi/vendor.json'), JSON.stringify(spec));
  const failing = { cdiVersion: '1.0.0', kind: 'fail.com/dev', devices: [{ name: 'x', containerEdits: { hooks: [{ hookName: 'createContainer', path: hook('fail', 'echo no such firmware >&2; exit 3') }] } }] };
  fs.writeFileSync(join(root, 'cdi/fail.json'), JSON.stringify(failing));
  // Hooks that append their phase: on the host (createRuntime, poststart) and inside the
  // container's writable layer (createContainer, startContainer), which outlives a restart.
  const append = (phase: string, file: string) => ({ hookName: phase, path: hook(`append-${phase}`, `echo ${phase} >> ${file}`) });
  const counting = {
    cdiVersion: '0.6.0',
    kind: 'count.com/dev',
    devices: [{ name: 'x', containerEdits: { hooks: [append('createRuntime', `${root}/out/restarts`), append('createContainer', '/marks'), append('startContainer', '/marks'), append('poststart', `${root}/out/restarts`)] } }],
  };
  fs.writeFileSync(join(root, 'cdi/count.json'), JSON.stringify(counting));
  fs.writeFileSync(
    join(root, 'cdi/nvidia.yaml'),
    `cdiVersion: "0.5.0"
kind: nvidia.com/gpu
devices:
  - name: "0"
    containerEdits:
      deviceNodes: [{ path: /dev/nvidia0, hostPath: ${root}/dev/nvidia4 }]
  - name: "1"
    containerEdits:
      deviceNodes: [{ path: /dev/nvidia0, hostPath: ${root}/dev/nvidia5 }]
  - name: "0:0"
    containerEdits:
      env: [MIG_SLOT=0]
      deviceNodes: [{ path: /dev/nvidia0, hostPath: ${root}/dev/nvidia4 }]
  - name: "0:2"
    containerEdits:
      env: [MIG_SLOT=2]
      deviceNodes: [{ path: /dev/nvidia0, hostPath: ${root}/dev/nvidia4 }]
containerEdits:
  deviceNodes: [{ path: /dev/nvidiactl, hostPath: ${root}/dev/nvidiactl }]
`,
  );
  // The stand-in NVML, and driver libraries of its version (999.99.fake) in a linker cache of
  // their own, next to a stale libnvidia-ml of another version that must not be taken.
  sh(`cc -shared -fPIC -O1 -o ${root}/lib/libnvidia-ml.so.999.99.fake -Wl,-soname,libnvidia-ml.so.1 ${join(__dirname, '../fixtures/fake-nvml.c')}`);
  sh(`cd ${root}/lib && echo 'int cuInit(int f){return f;}' > cuda.c && cc -shared -fPIC -o libcuda.so.999.99.fake -Wl,-soname,libcuda.so.1 cuda.c && ln -s libcuda.so.999.99.fake libcuda.so.1 && ln -s libnvidia-ml.so.999.99.fake libnvidia-ml.so.1`);
  sh(`cd ${root}/lib-old && cc -shared -fPIC -o libnvidia-ml.so.470.1 -Wl,-soname,libnvidia-ml.so.1 ../lib/cuda.c && ln -s libnvidia-ml.so.470.1 libnvidia-ml.so.1`);
  sh(`ldconfig -X -f /dev/null -C ${root}/ld.so.cache ${root}/lib ${root}/lib-old`);
  fs.writeFileSync(join(root, 'bin/nvidia-smi'), '#!/bin/sh\necho "GPU 0: Fake H200 (UUID: $NVIDIA_VISIBLE_DEVICES)"\n', { mode: 0o755 });
});

afterAll(() => {
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

describe.skipIf(skipBecause(SKIP, 'GPU and CDI container tests'))('CDI devices in containers', () => {
  let t: TestRuntime;
  beforeAll(() => {
    t = testRuntime({ init: { gpu: { cdiSpecDirs: [join(root, 'cdi')] } } });
  });
  afterAll(async () => t?.cleanup());

  it('nodes, mounts, env, groups and hooks of the spec are there; a node outside it cannot be opened', async () => {
    const c = await Container.create(
      cfg(
        'ls /dev/vendor; head -c 0 /dev/vendor/a && echo open-a-ok; head -c 0 /mnt/vendor/b 2>&1 || echo open-b-refused; ' +
          'cat /opt/vendor/lib.txt; echo "dev=$VENDOR_DEVICE"; id -G; cat /hook-mark /start-mark',
        (b) => b.devices(['vendor.com/dev=a']).volume({ source: join(root, 'vendor'), target: '/mnt/vendor', readOnly: true }),
      ),
      { runtime: t.runtime },
    );
    const created = JSON.parse(fs.readFileSync(join(root, 'out/create-runtime'), 'utf8')) as { id: string; pid: number; status: string };
    expect(created).toMatchObject({ id: c.id, status: 'created' });
    const out = await run(t.runtime, c);
    expect(out).toContain('a\n');
    expect(out).not.toMatch(/^b$/m);
    expect(out).toContain('open-a-ok');
    expect(out).toMatch(/Operation not permitted[\s\S]*open-b-refused/);
    expect(out).toContain('vendor library');
    expect(out).toContain('dev=a');
    expect(out).toMatch(/\b4242\b/);
    expect(out).toContain('created-inside\nstarted-inside');
    expect(fs.existsSync(join(root, 'out/poststart'))).toBe(true);
    await c.remove();
    expect(JSON.parse(fs.readFileSync(join(root, 'out/poststop'), 'utf8'))).toMatchObject({ id: c.id, status: 'stopped' });
  });

  it("a node's fileMode, uid and gid from the spec are the container's node's; the host's node keeps its own", async () => {
    const c = await Container.create(cfg('ls -ln /dev/vendor/own; head -c 0 /dev/vendor/own && echo open-ok', (b) => b.devices(['vendor.com/dev=own'])), { runtime: t.runtime });
    const out = await run(t.runtime, c);
    expect(out).toMatch(/^crw-r----- +1 +1234 +4321 +10, +229 .*\/dev\/vendor\/own\nopen-ok\n$/);
    const host = fs.statSync(join(root, 'vendor/a'));
    expect([host.mode & 0o777, host.uid, host.gid]).toEqual([0o666, 0, 0]);
    await c.remove();
  });

  it('netDevices: the host interface is moved into the container renamed, and back at removal; network "host" is refused', async () => {
    sh(`ip link add ${DUMMY} type veth peer name ${DUMMY}p`);
    try {
      const index = fs.readFileSync(`/sys/class/net/${DUMMY}/ifindex`, 'utf8');
      const c = await Container.create(cfg('sleep 30', (b) => b.devices(['vendor.com/dev=net'])), { runtime: t.runtime });
      expect(fs.existsSync(`/sys/class/net/${DUMMY}`)).toBe(false);
      await c.start();
      const inside = await c.exec(['/bin/sh', '-c', 'ls /sys/class/net | tr "\\n" " "; cat /sys/class/net/cdinet0/ifindex']);
      expect(inside.stdout).toBe(`cdinet0 lo ${index}`);
      await c.remove({ force: true });
      // Moved back under its host name while the container's namespace still existed.
      expect(fs.readFileSync(`/sys/class/net/${DUMMY}/ifindex`, 'utf8')).toBe(index);
      // A container that ended took its namespace along, and the veth with it: removal still succeeds.
      const ended = await Container.create(cfg('true', (b) => b.devices(['vendor.com/dev=net'])), { runtime: t.runtime });
      await run(t.runtime, ended);
      await ended.remove();
      expect(fs.existsSync(`/sys/class/net/${DUMMY}`)).toBe(false);
      sh(`ip link add ${DUMMY} type veth peer name ${DUMMY}p`);
      const before = (await Container.list({ runtime: t.runtime })).length;
      await expect(Container.create(cfg('true', (b) => b.devices(['vendor.com/dev=net']).network('host')), { runtime: t.runtime })).rejects.toThrow(
        /devices: vendor\.com\/dev=net \(.*vendor\.json\): netDevices\[0\]: the container shares the host's network namespace/,
      );
      sh(`ip link del ${DUMMY}`);
      await expect(Container.create(cfg('true', (b) => b.devices(['vendor.com/dev=net'])), { runtime: t.runtime })).rejects.toThrow(new RegExp(`netDevices\\[0\\]\\.hostInterfaceName: the host has no network interface ${DUMMY}`));
      expect((await Container.list({ runtime: t.runtime })).length).toBe(before);
    } finally {
      spawnSync('ip', ['link', 'del', DUMMY]);
    }
  });

  it('intelRdt without resctrl mounted is an error naming the field, and nothing is left', async () => {
    const mounted = fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(' - resctrl ');
    if (mounted) return; // this host has RDT: the join itself is tested on a stand-in resctrl (unit)
    const before = (await Container.list({ runtime: t.runtime })).length;
    await expect(Container.create(cfg('true', (b) => b.devices(['vendor.com/dev=rdt'])), { runtime: t.runtime })).rejects.toThrow(/devices: vendor\.com\/dev=rdt \(.*\): intelRdt\.closID: resctrl is not mounted/);
    expect((await Container.list({ runtime: t.runtime })).length).toBe(before);
  });

  it('the hooks run again when the restart supervisor respawns the init', async () => {
    const c = await Container.create(
      cfg('cat /marks; exit 3', (b) => b.devices(['count.com/dev=x']).restart('on-failure', { maxRetries: 2, initialBackoffMs: 50, maxBackoffMs: 100 })),
      { runtime: t.runtime },
    );
    const exhausted = new Promise<void>((resolve) => c.on('restartsExhausted', () => resolve()));
    await c.start();
    await exhausted;
    const restarts = () => fs.readFileSync(join(root, 'out/restarts'), 'utf8');
    for (let i = 0; i < 100 && restarts().split('\n').length < 7; i++) await new Promise((r) => setTimeout(r, 50));
    // The first create and start, then two restarts: three of each phase, in order.
    expect(restarts()).toBe('createRuntime\npoststart\n'.repeat(3));
    const runs = c.logs().stdout.split('createContainer\nstartContainer\n').length - 1;
    expect(runs).toBe(1 + 2 + 3); // each run prints the marks of every run so far
    await c.remove();
  });

  it('an unknown device or kind is an error naming the field, and nothing is left', async () => {
    const before = (await Container.list({ runtime: t.runtime })).length;
    const e = await Container.create(cfg('true', (b) => b.devices(['vendor.com/dev=a', 'vendor.com/dev=zz'])), { runtime: t.runtime }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RuntimeError);
    expect((e as Error).message).toMatch(/^devices\[1\]: vendor\.com\/dev has no device "zz" \(it has a, b, net, own, rdt\)/);
    const k = await Container.create(cfg('true', (b) => b.devices(['other.com/x=1'])), { runtime: t.runtime }).catch((x: unknown) => x);
    expect((k as Error).message).toMatch(/devices\[0\]: no CDI spec defines kind other\.com\/x/);
    expect(() => cfg('true', (b) => b.devices(['gpu0']))).toThrow(/devices\[0\]: expected a CDI device name/);
    expect((await Container.list({ runtime: t.runtime })).length).toBe(before);
  });
});

describe.skipIf(skipBecause(SKIP, 'GPU scheduling container tests'))('GPU scheduling on a fake two-GPU host', () => {
  let t: TestRuntime;
  const init = () => ({ engine: 'nvidia' as const, nvmlLibrary: join(root, 'lib/libnvidia-ml.so.999.99.fake'), gpu: { cdiSpecDirs: [join(root, 'cdi')], ldCache: join(root, 'ld.so.cache'), binDirs: [join(root, 'bin')] } });
  beforeAll(() => {
    t = testRuntime({ init: init() });
  });
  afterAll(async () => t?.cleanup());

  it('two containers asking for one GPU get different ones; a third is refused; the assignments outlive the runtime', async () => {
    const show = 'ls -l /dev/nvidia0 | sed "s/.* 195, *\\([0-9]*\\).*/minor=\\1/"; echo "visible=$NVIDIA_VISIBLE_DEVICES cuda=$CUDA_VISIBLE_DEVICES"';
    const a = await Container.create(cfg(show, (b) => b.gpuCount(1)), { runtime: t.runtime });
    const b = await Container.create(cfg(show, (b) => b.gpuCount(1)), { runtime: t.runtime });
    const outA = await run(t.runtime, a);
    const outB = await run(t.runtime, b);
    expect([outA, outB].sort()).toEqual(['minor=4\nvisible=GPU-fake-0 cuda=GPU-fake-0\n', 'minor=5\nvisible=GPU-fake-1 cuda=GPU-fake-1\n']);
    const before = (await Container.list({ runtime: t.runtime })).length;
    const third = await Container.create(cfg('true', (x) => x.gpuCount(1)), { runtime: t.runtime }).catch((e: unknown) => e);
    expect(third).toBeInstanceOf(RuntimeError);
    expect(third).toMatchObject({ code: 'EBUSY' });
    expect((third as Error).message).toMatch(new RegExp(`gpuCount: 1 GPU requested but only 0 of 2 are free: GPU 0 is held by ${'gpu\\d+'}-${process.pid} \\(`));
    expect((await Container.list({ runtime: t.runtime })).length).toBe(before);
    // A whole GPU named as a CDI device is held as exclusively as one asked for by index.
    await expect(Container.create(cfg('true', (x) => x.devices(['nvidia.com/gpu=GPU-fake-1'])), { runtime: t.runtime })).rejects.toThrow(/gpuDevices: GPU 1 is held by gpu\d+-/);
    expect((await Container.list({ runtime: t.runtime })).length).toBe(before);
    // A create that fails after its GPUs were chosen (a bad device name; a failing hook) gives them back.
    const state = () => fs.readdirSync(t.stateRoot).filter((f) => /^[0-9a-f]{32}$/.test(f)).length;
    const dirs = state();
    await a.remove();
    await expect(Container.create(cfg('true', (x) => x.gpuCount(1).devices(['vendor.com/dev=zz'])), { runtime: t.runtime })).rejects.toThrow(/devices\[0\]: vendor\.com\/dev has no device "zz"/);
    await expect(Container.create(cfg('true', (x) => x.gpuCount(1).devices(['fail.com/dev=x'])), { runtime: t.runtime })).rejects.toThrow(/createContainer hook .*\/fail exited with status 3: no such firmware/);
    expect((await t.runtime.gpus()).assignments.map((x) => x.containerId)).toEqual([b.id]);
    expect(state()).toBe(dirs - 1);
    const a2 = await Container.create(cfg(show, (x) => x.gpuCount(1)), { runtime: t.runtime });

    // A second host agent on the same state root sees the same assignments and honours them.
    const again = new Runtime({ ...init(), stateRoot: t.stateRoot, imageRoot: t.runtime.options.imageRoot, cgroupParent: t.runtime.options.cgroupParent, env: {}, logLevel: 'silent' });
    try {
      const gpus = await again.gpus();
      expect(gpus.assignments.map((x) => x.containerId).sort()).toEqual([a2.id, b.id].sort());
      expect(gpus.devices.map((d) => d.assignedTo?.length)).toEqual([1, 1]);
      await expect(Container.create(cfg('true', (x) => x.gpuCount(1)), { runtime: again })).rejects.toMatchObject({ code: 'EBUSY' });
      const freed = (await again.gpus()).assignments.find((x) => x.containerId === a2.id)!.gpus[0];
      await (await Container.load(a2.id, { runtime: again })).remove();
      const c = await Container.create(cfg(show, (x) => x.gpuCount(1)), { runtime: again });
      expect((await again.gpus()).assignments.find((x) => x.containerId === c.id)!.gpus).toEqual([freed]);
      await c.remove();
      await (await Container.load(b.id, { runtime: again })).remove();
    } finally {
      await again.close();
    }
  });

  it('MIG instances: reserved by count and profile, exclusive, a held one named as a CDI device is refused naming its holder, kept across a runtime restart, released on remove', async () => {
    // The stand-in NVML puts GPU 0 in MIG mode with a 1g.18gb (0:0) and a 3g.71gb (0:2) instance.
    process.env.FAKE_NVML_MIG = '1g.18gb,,3g.71gb';
    const ids = () => fs.readdirSync(t.stateRoot).filter((f) => /^[0-9a-f]{32}$/.test(f)).length;
    const made: Container[] = [];
    try {
      const show = 'echo "slot=$MIG_SLOT visible=$NVIDIA_VISIBLE_DEVICES"';
      // Two creates racing for the one 3g.71gb instance: one gets it, the other is refused naming it.
      const race = await Promise.allSettled([0, 1].map(() => Container.create(cfg('true', (b) => b.gpuMig({ count: 1, profile: '3g.71gb' })), { runtime: t.runtime })));
      const won = race.filter((r): r is PromiseFulfilledResult<Container> => r.status === 'fulfilled');
      const lost = race.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect([won.length, lost.length]).toEqual([1, 1]);
      expect(lost[0]!.reason).toMatchObject({ code: 'EBUSY', message: expect.stringMatching(/MIG 0:2 \(3g\.71gb\) is held by/) });
      await won[0]!.value.remove();
      // A restart keeps the container's instance: the respawned init sees the same one.
      const again1 = await Container.create(cfg(`${show}; exit 1`, (b) => b.gpuMig({ count: 1, profile: '3g.71gb' }).restart('on-failure', { maxRetries: 1, initialBackoffMs: 20 })), { runtime: t.runtime });
      const spent = new Promise<void>((resolve) => again1.on('restartsExhausted', () => resolve()));
      await again1.start();
      await spent;
      expect(again1.logs().stdout).toBe('slot=2 visible=MIG-fake-0-2\n'.repeat(2));
      await again1.remove();
      const a = await Container.create(cfg(show, (b) => b.gpuMig({ count: 1, profile: '1g.18gb' })), { runtime: t.runtime });
      made.push(a);
      expect(await run(t.runtime, a)).toBe('slot=0 visible=MIG-fake-0-0\n');
      const before = ids();
      const named = await Container.create(cfg('true', (b) => b.devices(['nvidia.com/gpu=0:0'])), { runtime: t.runtime }).catch((e: unknown) => e);
      expect(named).toMatchObject({ code: 'EBUSY' });
      expect((named as Error).message).toMatch(new RegExp(`devices: MIG 0:0 \\(1g\\.18gb\\) is held by ${a.name} \\(${a.id.slice(0, 12)}\\)`));
      const byUuid = await Container.create(cfg('true', (b) => b.devices(['nvidia.com/gpu=MIG-fake-0-0'])), { runtime: t.runtime }).catch((e: unknown) => e);
      expect((byUuid as Error).message).toMatch(/MIG 0:0 \(1g\.18gb\) is held by/);
      const c = await Container.create(cfg(show, (b) => b.gpuMig({ count: 1 })), { runtime: t.runtime });
      made.push(c);
      expect(await run(t.runtime, c)).toBe('slot=2 visible=MIG-fake-0-2\n');
      await expect(Container.create(cfg('true', (b) => b.gpuMig({ count: 1 })), { runtime: t.runtime })).rejects.toThrow(/gpuMig: 1 MIG instance requested but only 0 of 2 are free: MIG 0:0 \(1g\.18gb\) is held by .*; MIG 0:2 \(3g\.71gb\) is held by/);
      // The parent GPU is not handed out whole: a GPU asked for by count is GPU 1.
      const whole = await Container.create(cfg('true', (b) => b.gpuCount(1)), { runtime: t.runtime });
      made.push(whole);
      expect((await t.runtime.gpus()).assignments.find((x) => x.containerId === whole.id)!.gpus).toEqual([1]);
      await expect(Container.create(cfg('true', (b) => b.gpuDevices([0])), { runtime: t.runtime })).rejects.toThrow(/gpuDevices: GPU 0 has MIG enabled/);
      expect(ids()).toBe(before + 2);

      // A second runtime on the same state root (a host-agent restart) honours the reservations.
      const again = new Runtime({ ...init(), stateRoot: t.stateRoot, imageRoot: t.runtime.options.imageRoot, cgroupParent: t.runtime.options.cgroupParent, env: {}, logLevel: 'silent' });
      try {
        const gpus = await again.gpus();
        expect(gpus.devices[0]!.migInstances!.map((m) => [m.id, m.assignedTo])).toEqual([['0:0', [a.id]], ['0:2', [c.id]]]);
        await expect(Container.create(cfg('true', (b) => b.devices(['nvidia.com/gpu=0:2'])), { runtime: again })).rejects.toThrow(new RegExp(`MIG 0:2 \\(3g\\.71gb\\) is held by ${c.name}`));
        await (await Container.load(a.id, { runtime: again })).remove();
        made.shift();
        const d = await Container.create(cfg(show, (b) => b.devices(['nvidia.com/gpu=0:0'])), { runtime: again });
        made.push(d);
        expect((await again.gpus()).assignments.find((x) => x.containerId === d.id)!.mig).toEqual(['0:0']);
        await d.remove();
        made.pop();
      } finally {
        await again.close();
      }
    } finally {
      for (const x of made) await x.remove({ force: true }).catch(() => undefined);
      delete process.env.FAKE_NVML_MIG;
    }
  });

  it("stats() reports the container's GPU memory and utilisation from NVML's process accounting", async () => {
    const c = await Container.create(cfg('sleep 30', (x) => x.gpuCount(1)), { runtime: t.runtime });
    try {
      await c.start();
      const gpu = (await t.runtime.gpus()).assignments.find((x) => x.containerId === c.id)!.gpus[0]!;
      // The stand-in NVML lists the container's init and a process of someone else on its GPU.
      process.env.FAKE_NVML_PROCS = `${gpu}:${c.pid}:512:37,${gpu}:1:4096:50`;
      const s = await c.stats();
      expect(s.gpu).toEqual([{ index: gpu, uuid: `GPU-fake-${gpu}`, processes: 1, memoryUsedBytes: 512 * 2 ** 20, smUtilization: 37, memoryUtilization: 18 }]);
      expect((await c.stats({ only: ['memory'] })).gpu).toBeUndefined();
    } finally {
      delete process.env.FAKE_NVML_PROCS;
      await c.remove({ force: true });
    }
  });

  it('without an nvidia.com/gpu spec the nvidia engine binds the node and the driver files of NVML\'s version', async () => {
    const rt = testRuntime({ init: { ...init(), gpu: { ...init().gpu, cdiSpecDirs: [join(root, 'cdi-none')], devDir: join(root, 'dev') } } });
    try {
      const c = await Container.create(
        cfg('ls /dev | grep nvidia | tr "\\n" " "; echo; ls /usr/local/nvidia/lib64 | tr "\\n" " "; echo; echo "ld=$LD_LIBRARY_PATH"; nvidia-smi', (b) => b.gpuDevices([1])),
        { runtime: rt.runtime },
      );
      const out = await run(rt.runtime, c);
      const [nodes, libs, ld, smi] = out.split('\n');
      const idle = await Container.create(cfg('sleep 30', (b) => b.gpuDevices([0]).env({ NVIDIA_DRIVER_CAPABILITIES: 'all', LD_LIBRARY_PATH: '/opt/lib' })), { runtime: rt.runtime });
      await idle.start();
      // An exec sees what the command sees; what the configuration sets itself stays.
      expect((await idle.exec(['/bin/sh', '-c', 'echo "$CUDA_VISIBLE_DEVICES $LD_LIBRARY_PATH $NVIDIA_DRIVER_CAPABILITIES"'])).stdout).toBe('GPU-fake-0 /usr/local/nvidia/lib64:/opt/lib all\n');
      await idle.remove({ force: true });
      expect(nodes!.trim().split(' ')).toEqual(['nvidia5', 'nvidiactl']);
      expect(libs!.trim().split(' ').sort()).toEqual(['libcuda.so.1', 'libcuda.so.999.99.fake', 'libnvidia-ml.so.1', 'libnvidia-ml.so.999.99.fake']);
      expect(ld).toBe('ld=/usr/local/nvidia/lib64');
      expect(smi).toBe('GPU 0: Fake H200 (UUID: GPU-fake-1)');
      await c.remove();
    } finally {
      await rt.cleanup();
    }
  });
});
