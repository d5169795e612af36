/**
 * Prepare: SpawnPlans compiled for representative configurations, without root and without
 * a single side effect, compared with plans written out by hand.
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ContainerConfig, HardwareAffinity, NumaNode, RuntimeError } from '../../src/index.js';
import { prepareCreate, prepareExec, type PrepareContext } from '../../src/container/prepare.js';
import { ImageStore } from '../../src/image/images.js';
import { detectCgroups, MemoryCgroupFs } from '../../src/isolation/index.js';
import type { GpuInventory } from '../../src/gpu/inventory.js';

const HYBRID = [
  '30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755',
  ...['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids'].map(
    (c, i) => `${40 + i} 30 0:${40 + i} / /sys/fs/cgroup/${c} rw,nosuid,nodev,noexec,relatime shared:${20 + i} - cgroup cgroup rw,${c}`,
  ),
].join('\n');

const ID = '0123456789abcdef0123456789abcdef';
// Docker's default capabilities, by number (capability.h): CHOWN 0, DAC_OVERRIDE 1, FOWNER 3,
// FSETID 4, KILL 5, SETGID 6, SETUID 7, SETPCAP 8, NET_BIND_SERVICE 10, NET_RAW 13,
// SYS_CHROOT 18, MKNOD 27, AUDIT_WRITE 29, SETFCAP 31.
const DOCKER_CAPS = [0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31].reduce((m, n) => m | (1n << BigInt(n)), 0n);

let root: string;
let kernel: MemoryCgroupFs;
let ctx: PrepareContext;
let volumeDir: string;

beforeEach(() => {
  root = fs.mkdtempSync(join(tmpdir(), 'ss-prepare-'));
  const images = new ImageStore(join(root, 'images'), 'registry.example');
  const layer = images.layerPath('sha256:aa');
  fs.mkdirSync(join(layer, 'etc'), { recursive: true });
  fs.writeFileSync(join(layer, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1000::/home/agent:/bin/sh\n');
  fs.writeFileSync(join(layer, 'etc/group'), 'root:x:0:\nagent:x:1000:\nvideo:x:44:agent\n');
  images.save({ ref: 'test/agent:1', layers: ['sha256:aa'], config: { env: ['PATH=/bin:/usr/bin', 'LANG=C'], cmd: ['/bin/sh'], workingDir: '/work', user: '0' }, createdAt: '' });
  volumeDir = join(root, 'data');
  fs.mkdirSync(volumeDir);
  kernel = MemoryCgroupFs.forLayout(detectCgroups(HYBRID));
  kernel.host.numaCpus.set(1, [2, 3]);
  ctx = {
    images,
    kernel,
    stateDir: (id) => join(root, 'state', id),
    storageDir: (id) => join(root, 'images', 'containers', id),
    volumeSource: (p) => (fs.statSync(p).isDirectory() ? 'directory' : 'file'),
  };
});

afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

const base = () =>
  ContainerConfig.builder().name('plan-a').image('test/agent:1').command(['/bin/agent', '--serve']).security({ userNamespace: false, seccomp: 'unconfined' });

describe('prepareCreate', () => {
  it('compiles a minimal configuration into the plan written out by hand', () => {
    const plan = prepareCreate(base().build(), ID, ctx);
    const storage = join(root, 'images', 'containers', ID);
    const { security, ...process } = plan.process;
    expect({ ...plan, process }).toEqual({
      id: ID,
      name: 'plan-a',
      hostname: '0123456789ab',
      image: { ref: 'test/agent:1', layers: ['sha256:aa'], layerPaths: [join(root, 'images', 'layers', 'sha256-aa')] },
      paths: {
        stateDir: join(root, 'state', ID),
        storageDir: storage,
        rootfs: join(storage, 'rootfs'),
        upper: join(storage, 'upper'),
        work: join(storage, 'work'),
        stdoutLog: join(storage, 'stdout.log'),
        stderrLog: join(storage, 'stderr.log'),
      },
      process: {
        argv: ['/bin/agent', '--serve'],
        env: ['PATH=/bin:/usr/bin', 'LANG=C', 'HOSTNAME=0123456789ab', 'HOME=/root'],
        cwd: '/work',
        searchPath: '/bin:/usr/bin',
        user: { uid: 0, gid: 0, groups: [0] },
        placement: undefined,
      },
      volumes: [],
      namespaces: ['pid', 'mnt', 'uts', 'ipc', 'cgroup', 'net'],
      network: { mode: 'none', bandwidthMbps: undefined },
      userNamespace: undefined,
      cgroup: {},
      devices: [],
      gpus: undefined,
      lastCap: 40,
    });
    expect(security.capabilities).toEqual({ bounding: DOCKER_CAPS, effective: DOCKER_CAPS, permitted: DOCKER_CAPS, inheritable: 0n, ambient: 0n });
    expect(security.noNewPrivileges).toBe(true);
    expect(security.seccomp).toBeUndefined();
    // Nothing was made: no state, no storage, no cgroup.
    expect(fs.existsSync(join(root, 'state'))).toBe(false);
    expect(fs.existsSync(join(root, 'images', 'containers'))).toBe(false);
    expect(kernel.writes).toEqual([]);
  });

  it('resolves a named user in the image, with supplementary groups, inside a user namespace', () => {
    const plan = prepareCreate(base().user('agent').security({ userNamespace: { size: 65536 }, seccomp: 'unconfined' }).env({ LANG: 'en_US.UTF-8' }).build(), ID, ctx);
    expect(plan.process.user).toEqual({ uid: 1000, gid: 1000, groups: [1000, 44] });
    expect(plan.process.env).toEqual(['PATH=/bin:/usr/bin', 'LANG=en_US.UTF-8', 'HOSTNAME=0123456789ab', 'HOME=/']);
    expect(plan.process.security.capabilities).toEqual({ bounding: DOCKER_CAPS, effective: 0n, permitted: 0n, inheritable: 0n, ambient: 0n });
    expect(plan.namespaces).toEqual(['pid', 'mnt', 'uts', 'ipc', 'cgroup', 'net', 'user']);
    expect(plan.userNamespace).toEqual({ size: 65536, stagingDirs: [join(root, 'images', 'containers', ID, 'lower', '0')] });
  });

  it('turns resources, affinity, volumes and a bridge into cgroup limits, placement, mounts and network', () => {
    const config = base()
      .cpuLimit(1.5)
      .cpuWeight(200)
      .memoryLimit(256 * 1024 * 1024)
      .pidsLimit(64)
      .diskIops(300)
      .network('bridge')
      .networkBandwidth(40)
      .volume({ source: volumeDir, target: '/data//', readOnly: true })
      .build();
    config.setHardwareAffinity(HardwareAffinity.builder().numaNode(new NumaNode(1)).build());
    const plan = prepareCreate(config, ID, ctx);
    expect(plan.cgroup).toEqual({
      cpuLimit: 1.5,
      cpuWeight: 200,
      memoryLimit: 256 * 1024 * 1024,
      pidsLimit: 64,
      cpusetCpus: '2,3',
      blockIo: [{ device: '8:0', readIops: 300, writeIops: 300, readBps: undefined, writeBps: undefined }],
    });
    // preferLocalMemory defaults to true: MPOL_PREFERRED (1) on node 1.
    expect(plan.process.placement).toEqual({ cpus: [2, 3], mempolicy: { mode: 1, nodes: [1] } });
    expect(plan.volumes).toEqual([{ source: volumeDir, target: '/data', readOnly: true, isFile: false, idmap: false }]);
    expect(plan.network).toEqual({ mode: 'bridge', bandwidthMbps: 40 });
    expect(plan.namespaces).toContain('net');
  });

  it('init(true) puts the init in front of the command; terminal(true) marks the process; a volume can opt out of idmapping', () => {
    const config = base().command(['sleep', '5']).init(true).terminal(true).volume({ source: volumeDir, target: '/v', idmap: false }).build();
    const plan = prepareCreate(config, ID, { ...ctx, initBinary: () => '/opt/ss/stratoswarm-init' });
    expect(plan.process.argv).toEqual(['/dev/init', '--', 'sleep', '5']);
    expect(plan.init).toEqual({ hostPath: '/opt/ss/stratoswarm-init', path: '/dev/init' });
    expect(plan.process.terminal).toBe(true);
    expect(plan.volumes[0]!.idmap).toBe(false);
    // Idmapped by default, with a user namespace only.
    const userns = base().security({ userNamespace: { size: 65536 }, seccomp: 'unconfined' }).volume({ source: volumeDir, target: '/v' }).build();
    expect(prepareCreate(userns, ID, ctx).volumes[0]!.idmap).toBe(true);
    expect(() => prepareCreate(config, ID, ctx)).toThrow(/init asked for but no init binary/);
    const plain = prepareCreate(base().command(['sleep', '5']).build(), ID, ctx);
    expect(plain.init).toBeUndefined();
    expect(plain.process.terminal).toBeUndefined();
  });

  it('host network: no network namespace', () => {
    expect(prepareCreate(base().network('host').build(), ID, ctx).namespaces).toEqual(['pid', 'mnt', 'uts', 'ipc', 'cgroup']);
  });

  it('assigns the GPUs asked for from the inventory: their device nodes and device rules', () => {
    const gpus: GpuInventory = { source: 'nvml', driverVersion: '550.1', devices: [{ index: 0, minor: 0 }, { index: 1, minor: 3 }] };
    const plan = prepareCreate(base().gpuDevices([1]).build(), ID, { ...ctx, gpus });
    expect(plan.gpus).toEqual({ indexes: [1] });
    expect(plan.devices.at(-1)).toBe('/dev/nvidia3');
    // 195 is the nvidia major in the fake /proc/devices.
    expect(plan.cgroup.devices).toContainEqual({ allow: true, type: 'c', major: 195, minor: 3, access: 'rwm' });
    expect(plan.cgroup.devices).not.toContainEqual({ allow: true, type: 'c', major: 195, minor: 0, access: 'rwm' });
  });

  it('bad input fails naming the field, before anything exists', () => {
    const fail = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e as RuntimeError;
      }
      throw new Error('expected a failure');
    };
    const user = fail(() => prepareCreate(base().user('nobody').build(), ID, ctx));
    expect(user).toBeInstanceOf(RuntimeError);
    expect([user.code, user.step, user.message]).toEqual(['ENOTFOUND', 'user', 'user "nobody" not found in the image\'s /etc/passwd']);
    const vol = fail(() => prepareCreate(base().volume({ source: join(root, 'missing'), target: '/x' }).build(), ID, { ...ctx, volumeSource: () => { throw new RuntimeError('ENOENT', { code: 'ENOTFOUND', step: 'volume' }); } }));
    expect(vol.message).toBe(`volumes[0]: source \`${join(root, 'missing')}\`: ENOENT`);
    const gpu = fail(() => prepareCreate(base().gpuCount(2).build(), ID, { ...ctx, gpus: { source: 'dev', devices: [{ index: 0, minor: 0 }] } }));
    expect(gpu.message).toMatch(/^gpuCount: GPU 1 requested but this host has only GPUs 0/);
    const numa = base().build();
    numa.setHardwareAffinity(HardwareAffinity.builder().numaNode(new NumaNode(7)).build());
    expect(fail(() => prepareCreate(numa, ID, ctx)).message).toMatch(/node7\/cpulist/);
    expect(fs.existsSync(join(root, 'state'))).toBe(false);
    expect(kernel.writes).toEqual([]);
  });
});

describe('prepareExec', () => {
  it('compiles the process of an exec with its own user, env and working dir', () => {
    const plan = prepareExec(base().env({ A: '1' }).build(), { id: ID, imageRef: 'test/agent:1', namespaces: ['pid', 'mnt'], cgroupProcs: ['/x/cgroup.procs'] }, { argv: ['id'], env: { B: '2' }, workingDir: '/tmp', user: 'agent' }, ctx);
    expect(plan.process.user).toEqual({ uid: 1000, gid: 1000, groups: [1000, 44] });
    expect(plan.process.env).toEqual(['PATH=/bin:/usr/bin', 'LANG=C', 'HOSTNAME=0123456789ab', 'HOME=/', 'A=1', 'B=2']);
    expect(plan.process.cwd).toBe('/tmp');
    expect([plan.namespaces, plan.cgroupProcs, plan.lastCap]).toEqual([['pid', 'mnt'], ['/x/cgroup.procs'], 40]);
    expect(() => prepareExec(base().build(), { id: ID, imageRef: 'test/agent:1', namespaces: [], cgroupProcs: [] }, { argv: [] }, ctx)).toThrow(/non-empty list/);
  });
});
