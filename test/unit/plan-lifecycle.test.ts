import { describe, expect, it } from 'vitest';
import { ConfigError, ContainerConfig, RuntimeError } from '../../src/index.js';
import { assertOperation, canTransition, OperationQueue, STATES, TRANSITIONS } from '../../src/lifecycle.js';
import { compileCreatePlan, compileExecPlan, compileStartPlan, type CreatePlanInput, type StartPlanInput } from '../../src/plan/encode.js';
import { decodeBody, encodeFrame, FrameDecoder } from '../../src/spawner/wire.js';
import { replyError } from '../../src/spawner/client.js';

const security = {
  capabilities: { bounding: 0xa80425fbn, effective: 0xa80425fbn, permitted: 0xa80425fbn, inheritable: 0n, ambient: 0n },
  noNewPrivileges: true,
  readonlyRoot: true,
  maskedPaths: ['/proc/kcore'],
  readonlyPaths: ['/proc/sys'],
  rlimits: [{ name: 'RLIMIT_NOFILE', resource: 7, soft: 1024n, hard: 4096n }],
};

const input: CreatePlanInput = {
  stateDir: '/run/s/id',
  rootfs: '/var/lib/s/containers/id/rootfs',
  lowerDirs: ['/l/2', '/l/1'],
  upperDir: '/u',
  workDir: '/w',
  stdout: '/o',
  stderr: '/e',
  network: 'none',
  hostname: 'h',
  volumes: [{ source: '/src', target: '/data', readOnly: true, isFile: false, idmap: true }],
  security,
  cgroupProcs: ['/sys/fs/cgroup/memory/x/cgroup.procs'],
};

const start: StartPlanInput = {
  user: { uid: 1000, gid: 1000, groups: [1000, 5] },
  env: ['PATH=/bin'],
  cwd: '/',
  argv: ['/bin/sh', '-c', 'true'],
  searchPath: '/bin',
  security,
  cgroupProcs: [],
  lastCap: 40,
};

function ops(fields: (string | Buffer)[]): string[] {
  const out: string[] = [];
  fields.forEach((f, i) => {
    if (f === 'op') out.push(`${fields[i + 1]}:${fields[i + 2]}`);
  });
  return out;
}

describe('spawn plan', () => {
  it('orders the init steps: mounts, pivot, user namespace, park; then identity, confinement, exec', () => {
    const o = ops(compileCreatePlan({ ...input, userns: { uidMap: '0 100000 65536', gidMap: '0 100000 65536', stagingDirs: ['/s/0', '/s/1'] } }));
    const at = (x: string) => o.indexOf(x);
    expect(o[0]).toBe('sync:go');
    expect(at('overlay:rootfs')).toBeLessThan(at('mount:proc'));
    expect(at('volume:ro')).toBeLessThan(at('mask:path'));
    expect(at('mask:path')).toBeLessThan(at('pivot-root:rootfs'));
    expect(at('pivot-root:rootfs')).toBeLessThan(at('root-readonly:root'));
    expect(at('hostname:set')).toBeLessThan(at('setns:user'));
    expect(at('setns:user')).toBeLessThan(at('close-fds:close'));
    // The park point is the end of the create plan: nothing of the process is in it.
    expect(o.at(-1)).toBe('ready:park');
    for (const step of ['setuid:set', 'capabilities:bounding', 'chdir:cwd', 'resolve-exec:argv0', 'execve:exec', 'rlimit:RLIMIT_NOFILE']) expect(o).not.toContain(step);
    expect(compileCreatePlan(input)).not.toContain('argv');

    const p = ops(compileStartPlan(start));
    const sat = (x: string) => p.indexOf(x);
    expect(sat('rlimit:RLIMIT_NOFILE')).toBeLessThan(sat('capabilities:bounding'));
    expect(sat('capabilities:bounding')).toBeLessThan(sat('setuid:set'));
    expect(sat('setuid:set')).toBeLessThan(sat('capabilities:sets'));
    expect(sat('capabilities:sets')).toBeLessThan(sat('close-fds:close'));
    expect(sat('close-fds:close')).toBeLessThan(sat('chdir:cwd'));
    expect(sat('chdir:cwd')).toBeLessThan(sat('resolve-exec:argv0'));
    expect(p.at(-1)).toBe('execve:exec');
    expect(p).not.toContain('setns:user');
    expect(p).not.toContain('hostname:set');
    expect(ops(compileStartPlan({ ...start, hostname: 'pooled' }))).toContain('hostname:set');
    const f = compileStartPlan({ ...start, stdio: [2, 0] });
    expect(f[f.indexOf('stdio-fds') + 1]).toBe('0,2');
  });

  it('a pooled init of the default profile loads its seccomp program at the park point, and start then carries none', () => {
    const bpf = Buffer.alloc(16, 1);
    const f = compileCreatePlan({ ...input, preloadSeccomp: bpf });
    const o = ops(f);
    expect(o.slice(-2)).toEqual(['seccomp:load', 'ready:park']);
    expect(f[f.indexOf('seccomp') + 1]).toBe(bpf);
    const sec = { ...security, seccomp: { bpf } };
    const loaded = compileStartPlan({ ...start, security: sec, seccompLoaded: true });
    expect(loaded).not.toContain('seccomp');
    expect(ops(loaded)).not.toContain('seccomp:load');
    expect(ops(compileStartPlan({ ...start, security: sec }))).toContain('seccomp:load');
  });

  it('places the process on its CPUs and NUMA node before it drops privileges', () => {
    const f = compileStartPlan({ ...start, placement: { cpus: [0, 1], mempolicy: { mode: 1, nodes: [0] } } });
    const o = ops(f);
    expect(o.indexOf('affinity:cpus')).toBeLessThan(o.indexOf('capabilities:bounding'));
    expect(o.indexOf('mempolicy:set')).toBeLessThan(o.indexOf('capabilities:bounding'));
    const at = f.indexOf('affinity');
    expect(f.slice(at, at + 6)).toEqual(['affinity', 'cpus', '0', '2', '0', '1']);
    expect(ops(compileStartPlan(start))).not.toContain('affinity:cpus');
  });

  it('the host network binds /sys and skips loopback setup', () => {
    const o = ops(compileCreatePlan({ ...input, network: 'host' }));
    expect(o).toContain('bind:sys');
    expect(o).not.toContain('loopback:up');
    const f = compileCreatePlan({ ...input, network: 'host' });
    expect(f[f.indexOf('namespaces') + 1]).toBe('pid,mnt,uts,ipc');
  });

  it('loads seccomp before the capability drop when no_new_privs is off', () => {
    const o = ops(compileStartPlan({ ...start, security: { ...security, noNewPrivileges: false, seccomp: { bpf: Buffer.alloc(8) }, seccompBeforeCapabilityDrop: true } }));
    expect(o.indexOf('seccomp:load')).toBeLessThan(o.indexOf('capabilities:bounding'));
    const o2 = ops(compileStartPlan({ ...start, security: { ...security, seccomp: { bpf: Buffer.alloc(8) } } }));
    expect(o2.indexOf('seccomp:load')).toBe(o2.length - 2);
  });

  it('volumes are idmapped only inside a user namespace, and not with idmap: false', () => {
    const volumeNumbers = (f: (string | Buffer)[]) => {
      const at = f.indexOf('volume');
      const ns = Number(f[at + 2]);
      const nn = Number(f[at + 3 + ns]);
      return f.slice(at + 4 + ns, at + 4 + ns + nn);
    };
    expect(volumeNumbers(compileCreatePlan(input))).toEqual(['16385', '0', '0']);
    const userns = { uidMap: '0 100000 65536', gidMap: '0 100000 65536', stagingDirs: ['/s/0', '/s/1'] };
    expect(volumeNumbers(compileCreatePlan({ ...input, userns }))).toEqual(['16385', '0', '0', '1']);
    const plain = { ...input, userns, volumes: [{ ...input.volumes[0]!, idmap: false }] };
    expect(volumeNumbers(compileCreatePlan(plain))).toEqual(['16385', '0', '0']);
  });

  it('an init is bound read-only (but executable) into /dev; a terminal makes stdin the controlling tty and /dev/console', () => {
    const f = compileCreatePlan({ ...input, init: { hostPath: '/opt/ss/stratoswarm-init', path: '/dev/init' } });
    const at = f.indexOf('init');
    expect(f.slice(at - 2, at + 8)).toEqual(['op', 'bind', 'init', '2', '/opt/ss/stratoswarm-init', '/dev/init', '3', String(1 | 2 | 4), '1', '0']);
    const o = ops(f);
    expect(o.indexOf('bind:init')).toBeGreaterThan(o.indexOf('mount:dev'));
    expect(o.indexOf('bind:init')).toBeLessThan(o.indexOf('pivot-root:rootfs'));
    const tty = compileCreatePlan({ ...input, terminal: true, console: { path: '/dev/pts/7' } });
    const t = ops(tty);
    expect(t.indexOf('stdio:tty')).toBe(t.indexOf('stdio:dup') + 1);
    expect(t.indexOf('setsid:new')).toBeLessThan(t.indexOf('stdio:tty'));
    expect(tty).toContain('/dev/console');
    expect(() => compileCreatePlan({ ...input, terminal: true })).toThrow(/none was opened/);
    const exec = compileExecPlan({ user: start.user, env: [], cwd: '/', argv: ['sh'], searchPath: '/bin', security, cgroupProcs: [], lastCap: 40, namespaces: ['pid'], terminal: true });
    expect(ops(exec).slice(0, 5)).toEqual(['sync:go', 'setns:join', 'setsid:new', 'stdio:dup', 'stdio:tty']);
  });

  it('an exec joins the namespaces, then forks into them', () => {
    const f = compileExecPlan({ user: start.user, env: [], cwd: '/', argv: ['ls'], searchPath: '/bin', security, cgroupProcs: [], lastCap: 40, namespaces: ['pid', 'mnt'] });
    expect(ops(f).slice(0, 3)).toEqual(['sync:go', 'setns:join', 'setsid:new']);
    const o = ops(f);
    expect(o.indexOf('close-fds:close')).toBeLessThan(o.indexOf('chdir:cwd'));
    expect(o.indexOf('chdir:cwd')).toBeLessThan(o.indexOf('resolve-exec:argv0'));
    expect(o.at(-1)).toBe('execve:exec');
    expect(f[f.indexOf('join-namespaces') + 1]).toBe('pid,mnt');
  });
});

describe('wire format', () => {
  it('round-trips fields, including empty and binary-safe ones, across chunk boundaries', () => {
    const frame = encodeFrame(['create', '', 'ünïcode', 'x'.repeat(70000)]);
    const d = new FrameDecoder();
    const got: string[][] = [];
    for (let i = 0; i < frame.length; i += 1000) got.push(...d.push(frame.subarray(i, i + 1000)));
    expect(got).toEqual([['create', '', 'ünïcode', 'x'.repeat(70000)]]);
  });

  it('refuses truncated fields and oversized frames', () => {
    expect(() => decodeBody(Buffer.from([5, 0, 0, 0, 1]))).toThrow(/past the end/);
    const big = Buffer.alloc(4);
    big.writeUInt32LE(64 << 20);
    expect(() => new FrameDecoder().push(big)).toThrow(/exceeds/);
  });

  it('an error reply becomes a RuntimeError naming step, syscall, path and errno', () => {
    const e = replyError(['error', 'ESPAWN', 'mount', '2', 'ENOENT', '', '/proc', ''], 'create container a');
    expect(e).toBeInstanceOf(RuntimeError);
    expect(e).toMatchObject({ code: 'ESPAWN', step: 'mount', errno: 'ENOENT', errnoNumber: 2, path: '/proc' });
    expect(e.message).toBe('create container a: step mount `/proc`: ENOENT');
  });
});

describe('lifecycle table', () => {
  it('allows exactly the documented transitions', () => {
    const allowed = STATES.flatMap((from) => STATES.filter((to) => canTransition(from, to)).map((to) => `${from}>${to}`));
    expect(allowed).toEqual([
      'creating>created',
      'creating>removed',
      'created>running',
      'created>stopped',
      'created>removed',
      'running>paused',
      'running>stopped',
      'paused>running',
      'paused>stopped',
      'stopped>running', // a restart policy's restart
      'stopped>removed',
    ]);
    expect(TRANSITIONS.removed).toEqual([]);
  });

  it('an illegal operation names both states', () => {
    expect(() => assertOperation('a', 'resume', 'created')).toThrow('resume container a: cannot go from created to running');
    expect(() => assertOperation('a', 'pause', 'stopped')).toThrow(/cannot go from stopped to paused/);
    expect(() => assertOperation('a', 'start', 'created')).not.toThrow();
  });

  it('serializes operations in call order, even when one fails', async () => {
    const q = new OperationQueue();
    const order: string[] = [];
    const slow = q.run(async () => {
      await new Promise((r) => setTimeout(r, 20));
      order.push('a');
      throw new Error('a failed');
    });
    const fast = q.run(async () => {
      order.push('b');
      return 2;
    });
    await expect(slow).rejects.toThrow('a failed');
    expect(await fast).toBe(2);
    expect(order).toEqual(['a', 'b']);
  });
});

describe('ContainerConfig', () => {
  it('builds the spec example', () => {
    const c = ContainerConfig.builder().name('agent-001').image('stratoswarm/base-agent:latest').cpuLimit(2.0).memoryLimit(4 * 1024 ** 3).gpuCount(1).build();
    expect(c.spec).toMatchObject({ name: 'agent-001', network: 'none', resources: { cpuLimit: 2, memoryLimit: 4 * 1024 ** 3, gpuCount: 1 } });
    expect(c.spec.personality.name).toBe('Balanced');
  });

  it('names every bad field at once', () => {
    let err: unknown;
    try {
      ContainerConfig.builder()
        .name('bad name!')
        .image('UPPER/Case')
        .command([])
        .env({ 'BAD-KEY': 'x' })
        .workingDir('relative')
        .user('a:b:c')
        .hostname('-bad-')
        .volume({ source: 'rel', target: '/proc/x' })
        .volume({ source: '/ok', target: '/a/../b' })
        .cpuLimit(-1)
        .memoryLimit(10)
        .pidsLimit(0)
        .cpusetCpus('x')
        .networkBandwidth(100)
        .terminal('yes' as unknown as boolean)
        .build();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).fields()).toEqual([
      'name',
      'image',
      'command',
      'env.BAD-KEY',
      'workingDir',
      'user',
      'hostname',
      'volumes[0].source',
      'volumes[0].target',
      'volumes[1].target',
      'terminal',
      'cpuLimit',
      'memoryLimit',
      'pidsLimit',
      'cpusetCpus',
      'networkBandwidth',
    ]);
    expect((err as Error).message).toMatch(/mounts over \/proc\/x are refused/);
  });

  it('requires name and image', () => {
    expect(() => ContainerConfig.builder().build()).toThrow(/name: is required; image: is required/);
  });

  it('round-trips through its stored form', () => {
    const c = ContainerConfig.builder().name('x').image('stratoswarm/base-agent').command(['sh']).env({ A: '1' }).build();
    const back = ContainerConfig.fromSpec(JSON.parse(JSON.stringify(c.toJSON())));
    expect(back.spec).toEqual(c.spec);
  });
});
