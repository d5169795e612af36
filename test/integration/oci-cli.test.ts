/**
 * The OCI runtime command line driven directly, as an engine drives it: bundles built here
 * (a busybox rootfs and a config.json) exercise the fields the translation carries out, the
 * lifecycle verbs, hooks of each kind with the state on stdin, exec, and the refusal of a
 * field this runtime does not support (naming it, leaving nothing behind).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxMissing, OCI_CLI, ociEnv, type OciEnv } from '../helpers/oci.js';
import { SKIP_REASON } from '../helpers/runtime.js';
import { skipBecause } from '../helpers/skip.js';

const internalId = (id: string) => createHash('sha256').update(id).digest('hex').slice(0, 32);

describe.skipIf(skipBecause(SKIP_REASON || busyboxMissing(), 'OCI command line tests'))('stratoswarm-oci', () => {
  let e: OciEnv;
  beforeAll(() => {
    e = ociEnv();
  });
  afterAll(() => e?.cleanup());

  /** create with the container's stdout and stderr in a file, as an engine's pipes would be. */
  function create(id: string, bundle: string, extra: string[] = []): { status: number | null; out: string } {
    const out = join(e.dir, `${id}.out`);
    const fd = fs.openSync(out, 'w');
    try {
      const r = runWithOutput(e, ['create', '--bundle', bundle, ...extra, id], fd);
      return { status: r, out };
    } finally {
      fs.closeSync(fd);
    }
  }

  const state = (id: string) => JSON.parse(e.run(['state', id]).stdout) as { status: string; pid?: number; bundle: string; annotations?: Record<string, string> };

  async function waitFor(id: string, status: string): Promise<void> {
    for (let i = 0; i < 300 && state(id).status !== status; i++) await delay(10);
    expect(state(id).status).toBe(status);
  }

  it('create, start, state and delete; the process gets the engine\'s stdio; the pid file names the process the engine waits for', async () => {
    const b = e.bundle('life', (c) => {
      c.process.args = ['sh', '-c', 'echo out-line; echo err-line >&2; exit 3'];
      c.root.readonly = false;
    });
    const pidFile = join(e.dir, 'life.pid');
    const { status, out } = create('life', b, ['--pid-file', pidFile]);
    expect(status, fs.readFileSync(out, 'utf8')).toBe(0);
    const s = state('life');
    expect(s).toMatchObject({ ociVersion: expect.any(String), id: 'life', status: 'created', bundle: b });
    expect(s.pid).toBeGreaterThan(0);
    const keeper = Number(fs.readFileSync(pidFile, 'utf8'));
    expect(fs.existsSync(`/proc/${keeper}`)).toBe(true);
    expect(e.run(['start', 'life']).status).toBe(0);
    await waitFor('life', 'stopped');
    expect(fs.readFileSync(out, 'utf8')).toContain('out-line\nerr-line\n');
    // The keeper ends with the container's process.
    for (let i = 0; i < 200 && fs.existsSync(`/proc/${keeper}`) && !fs.readFileSync(`/proc/${keeper}/stat`, 'utf8').includes(') Z'); i++) await delay(10);
    expect(e.run(['start', 'life']).stderr).toMatch(/stopped, not created/);
    expect(e.run(['delete', 'life']).status).toBe(0);
    expect(e.run(['state', 'life']).stderr).toMatch(/does not exist/);
    expect(fs.existsSync(join(e.root, internalId('life')))).toBe(false);
  });

  it('carries out config.json: user and groups, env, cwd, hostname, capabilities, rlimits, no_new_privs, oom_score_adj, readonly root, mounts, masked and read-only paths, sysctl, cgroup limits, seccomp', async () => {
    const host = fs.mkdtempSync(join(e.dir, 'vol-'));
    fs.chmodSync(host, 0o755);
    fs.writeFileSync(join(host, 'file'), 'from-host');
    const script = [
      'echo uid=$(id -u) gid=$(id -g) groups="$(id -G)"',
      'echo cwd=$(pwd) host=$(hostname) env=$MYVAR',
      'grep -E "^(CapEff|CapBnd|NoNewPrivs)" /proc/self/status | tr -s "\\t" " "',
      'echo nofile=$(ulimit -n) oom=$(cat /proc/self/oom_score_adj)',
      'touch /rootfs-write 2>/dev/null && echo rootrw=yes || echo rootrw=no',
      'echo vol=$(cat /data/file) ; touch /data/x 2>/dev/null && echo volrw=yes || echo volrw=no',
      'touch /scratch/y && echo tmpfs=yes',
      'echo keys=$(wc -c < /proc/keys)',
      'echo 1 > /proc/sys/kernel/printk 2>/dev/null && echo procsys=rw || echo procsys=ro',
      'echo ping=$(cat /proc/sys/net/ipv4/ping_group_range | tr "\\t" " ")',
      'echo mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes) pids=$(cat /sys/fs/cgroup/pids/pids.max)',
      'mkdir /tmp/denied 2>/dev/null && echo mkdir=allowed || echo mkdir=denied',
    ].join('; ');
    const b = e.bundle('fields', (c) => {
      c.process.args = ['sh', '-c', script];
      c.process.user = { uid: 1000, gid: 1000, additionalGids: [2000, 3000] };
      c.process.env.push('MYVAR=hello');
      c.process.cwd = '/tmp';
      c.hostname = 'oci-fields';
      // A non-root user keeps capabilities across execve only through the ambient set.
      c.process.capabilities = { bounding: ['CAP_CHOWN', 'CAP_KILL'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'], inheritable: ['CAP_KILL'], ambient: ['CAP_KILL'] };
      c.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 321, hard: 321 }];
      c.process.oomScoreAdj = 123;
      c.mounts.push({ destination: '/data', type: 'bind', source: host, options: ['rbind', 'ro'] });
      c.mounts.push({ destination: '/scratch', type: 'tmpfs', source: 'tmpfs', options: ['mode=1777', 'size=1m'] });
      c.mounts.push({ destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['ro', 'nosuid', 'noexec', 'nodev'] });
      c.linux.sysctl = { 'net.ipv4.ping_group_range': '0 0' };
      c.linux.resources = { ...c.linux.resources, memory: { limit: 64 * 1024 * 1024 }, pids: { limit: 50 } };
      c.linux.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }] };
    });
    fs.symlinkSync('busybox', join(JSON.parse(fs.readFileSync(join(b, 'config.json'), 'utf8')).root.path, 'bin/mkdir'));
    const { status, out } = create('fields', b);
    expect(status, fs.readFileSync(out, 'utf8')).toBe(0);
    expect(e.run(['start', 'fields']).status).toBe(0);
    await waitFor('fields', 'stopped');
    const text = fs.readFileSync(out, 'utf8');
    expect(text).toContain('uid=1000 gid=1000 groups=1000 2000 3000');
    expect(text).toContain('cwd=/tmp host=oci-fields env=hello');
    expect(text).toContain('CapEff: 0000000000000020'); // CAP_KILL only
    expect(text).toContain('CapBnd: 0000000000000021'); // CAP_CHOWN, CAP_KILL
    expect(text).toContain('NoNewPrivs: 1');
    expect(text).toContain('nofile=321 oom=123');
    expect(text).toContain('rootrw=no');
    expect(text).toContain('vol=from-host');
    expect(text).toContain('volrw=no');
    expect(text).toContain('tmpfs=yes');
    expect(text).toContain('keys=0'); // masked: /dev/null over it
    expect(text).toContain('procsys=ro');
    expect(text).toContain('ping=0 0');
    expect(text).toContain(`mem=${64 * 1024 * 1024} pids=50`);
    expect(text).toContain('mkdir=denied');
    expect(e.run(['delete', 'fields']).status).toBe(0);
  });

  it('runs a hook of each kind with the state on stdin, in the namespaces the spec says', async () => {
    const log = join(e.dir, 'hook-log');
    fs.mkdirSync(log);
    const hostHook = (name: string) => ({ path: '/bin/sh', args: ['sh', '-c', `cat > ${log}/${name}.json; echo "$HOOK_ENV" > ${log}/${name}.env`], env: ['HOOK_ENV=' + name] });
    // createContainer and startContainer run in the container's mount namespace: the path
    // is the container's and what they write lands in its rootfs.
    const inHook = (name: string) => ({ path: '/bin/sh', args: ['sh', '-c', `cat > /tmp/${name}.json; hostname > /tmp/${name}.host`] });
    const b = e.bundle('hooks', (c) => {
      c.process.args = ['true'];
      c.root.readonly = false;
      c.hostname = 'in-container';
      c.annotations = { 'io.stratoswarm.personality': 'Explorer', 'example.com/note': 'kept' };
      c.hooks = { createRuntime: [hostHook('createRuntime')], createContainer: [inHook('createContainer')], startContainer: [inHook('startContainer')], poststart: [hostHook('poststart')], poststop: [hostHook('poststop')] };
    });
    const rootfs = JSON.parse(fs.readFileSync(join(b, 'config.json'), 'utf8')).root.path as string;
    expect(create('hooks', b).status).toBe(0);
    const created = JSON.parse(fs.readFileSync(join(log, 'createRuntime.json'), 'utf8'));
    expect(created).toMatchObject({ id: 'hooks', status: 'created', bundle: b, annotations: { 'io.stratoswarm.personality': 'Explorer', 'example.com/note': 'kept' } });
    expect(fs.readFileSync(join(log, 'createRuntime.env'), 'utf8').trim()).toBe('createRuntime');
    expect(JSON.parse(fs.readFileSync(join(rootfs, 'tmp/createContainer.json'), 'utf8')).id).toBe('hooks');
    expect(fs.readFileSync(join(rootfs, 'tmp/createContainer.host'), 'utf8').trim()).toBe('in-container');
    expect(fs.existsSync(join(rootfs, 'tmp/startContainer.json'))).toBe(false);
    expect(e.run(['start', 'hooks']).status).toBe(0);
    expect(JSON.parse(fs.readFileSync(join(rootfs, 'tmp/startContainer.json'), 'utf8')).status).toBe('created');
    expect(JSON.parse(fs.readFileSync(join(log, 'poststart.json'), 'utf8')).status).toBe('running');
    await waitFor('hooks', 'stopped');
    expect(fs.existsSync(join(log, 'poststop.json'))).toBe(false);
    expect(e.run(['delete', 'hooks']).status).toBe(0);
    expect(JSON.parse(fs.readFileSync(join(log, 'poststop.json'), 'utf8'))).toMatchObject({ id: 'hooks', status: 'stopped' });
  });

  it('a hook past its timeout fails the create, and nothing is left behind', () => {
    const b = e.bundle('slowhook', (c) => {
      c.hooks = { createRuntime: [{ path: '/bin/sleep', args: ['sleep', '10'], timeout: 1 }] };
    });
    const { status, out } = create('slowhook', b);
    expect(status).toBe(1);
    expect(fs.readFileSync(out, 'utf8')).toMatch(/hooks\.createRuntime\[0\]: `\/bin\/sleep` ran past its timeout of 1 s/);
    expect(fs.existsSync(join(e.root, internalId('slowhook')))).toBe(false);
    expect(fs.existsSync(join(e.root, 'storage/containers', internalId('slowhook')))).toBe(false);
  });

  it('refuses a field it does not support, naming it, as a JSON error line in --log, leaving nothing behind', () => {
    const b = e.bundle('unsupported', (c) => {
      c.linux.intelRdt = { closID: 'x' };
      c.process.selinuxLabel = 'system_u:system_r:container_t:s0';
      c.annotations = { 'io.stratoswarm.personality': 'Nobody' };
    });
    const logFile = join(e.dir, 'log.json');
    const r = e.run(['--log', logFile, '--log-format', 'json', 'create', '--bundle', b, 'unsupported']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/linux\.intelRdt: is not supported/);
    expect(r.stderr).toMatch(/process\.selinuxLabel: is not supported/);
    expect(r.stderr).toMatch(/io\.stratoswarm\.personality.*unknown personality "Nobody"/);
    const line = JSON.parse(fs.readFileSync(logFile, 'utf8').trim().split('\n').pop()!);
    expect(line).toMatchObject({ level: 'error', msg: expect.stringContaining('linux.intelRdt') });
    expect(fs.existsSync(join(e.root, internalId('unsupported')))).toBe(false);
  });

  it('capabilities that are no capability, or that this host cannot grant, are left out with a warning in --log; the container runs', async () => {
    // This runtime's bounding set: what it can grant. A host lacking one (CAP_SYS_RESOURCE,
    // here) shows that half; a host with all of them still has the unknown name.
    const bnd = BigInt(`0x${/^CapBnd:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]}`);
    const lacking = bnd & (1n << 24n) ? undefined : 'CAP_SYS_RESOURCE';
    if (!lacking) console.log('this host grants CAP_SYS_RESOURCE: only the unknown capability is checked');
    const asked = ['CAP_KILL', 'CAP_TEST', ...(lacking ? [lacking] : [])];
    const b = e.bundle('caps', (c) => {
      c.process.args = ['sh', '-c', 'grep ^CapBnd /proc/self/status; sleep 30'];
      c.process.capabilities = { bounding: asked, effective: asked, permitted: asked };
    });
    const logFile = join(e.dir, 'caps-log.json');
    const out = join(e.dir, 'caps.out');
    const fd = fs.openSync(out, 'w');
    try {
      expect(runWithOutput(e, ['--log', logFile, '--log-format', 'json', 'create', '--bundle', b, 'caps'], fd), fs.readFileSync(out, 'utf8')).toBe(0);
    } finally {
      fs.closeSync(fd);
    }
    const lines = fs.readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { level: string; msg: string });
    expect(lines.filter((l) => l.level === 'warning').map((l) => l.msg)).toEqual(
      ['bounding', 'effective', 'permitted'].flatMap((k) => [
        `process.capabilities.${k}: ignoring CAP_TEST: not a capability`,
        ...(lacking ? [`process.capabilities.${k}: ignoring ${lacking}: not in this runtime's bounding set, so it cannot be granted`] : []),
      ]),
    );
    expect(e.run(['start', 'caps']).status).toBe(0);
    for (let i = 0; i < 300 && !fs.readFileSync(out, 'utf8').includes('CapBnd'); i++) await delay(10);
    expect(fs.readFileSync(out, 'utf8')).toMatch(/^CapBnd:\s*0000000000000020$/m); // CAP_KILL alone
    expect(e.run(['delete', '--force', 'caps']).status).toBe(0);
  });

  it('kill by name and number, pause and resume, ps, update, exec, delete --force', async () => {
    const b = e.bundle('svc', (c) => {
      c.process.args = ['sh', '-c', 'trap "echo got-term; exit 5" TERM; while true; do sleep 0.1; done'];
      c.root.readonly = false;
    });
    const { out } = create('svc', b);
    expect(e.run(['start', 'svc']).status).toBe(0);
    expect(state('svc').status).toBe('running');
    expect(e.run(['delete', 'svc']).stderr).toMatch(/running \(stop it first, or --force\)/);
    expect(e.run(['pause', 'svc']).status).toBe(0);
    expect(state('svc').status).toBe('paused');
    expect(e.run(['resume', 'svc']).status).toBe(0);
    expect(state('svc').status).toBe('running');
    const pids = JSON.parse(e.run(['ps', '--format', 'json', 'svc']).stdout) as number[];
    expect(pids).toContain(state('svc').pid);
    const update = e.run(['update', '--resources', '-', 'svc'], { input: JSON.stringify({ memory: { limit: 48 * 1024 * 1024 }, pids: { limit: 40 } }) });
    expect(update.status, update.stderr).toBe(0);
    expect(fs.readFileSync(`/sys/fs/cgroup/memory/${e.cgroupParent}/${internalId('svc')}/memory.limit_in_bytes`, 'utf8').trim()).toBe(String(48 * 1024 * 1024));
    // exec: a process in the container, its exit code the command's own.
    const proc = join(e.dir, 'exec.json');
    fs.writeFileSync(proc, JSON.stringify({ args: ['sh', '-c', 'echo exec-ran-as-$(id -u) > /tmp/exec-out; exit 4'], cwd: '/', env: ['PATH=/bin'], user: { uid: 0, gid: 0 } }));
    const ex = e.run(['exec', '--process', proc, 'svc']);
    expect(ex.status, ex.stderr).toBe(4);
    const rootfs = JSON.parse(fs.readFileSync(join(b, 'config.json'), 'utf8')).root.path as string;
    expect(fs.readFileSync(join(rootfs, 'tmp/exec-out'), 'utf8')).toBe('exec-ran-as-0\n');
    const pidFile = join(e.dir, 'exec.pid');
    fs.writeFileSync(proc, JSON.stringify({ args: ['sleep', '0.2'], cwd: '/', env: ['PATH=/bin'] }));
    expect(e.run(['exec', '--detach', '--pid-file', pidFile, '--process', proc, 'svc']).status).toBe(0);
    expect(Number(fs.readFileSync(pidFile, 'utf8'))).toBeGreaterThan(0);
    expect(e.run(['kill', 'svc', 'TERM']).status).toBe(0);
    await waitFor('svc', 'stopped');
    expect(fs.readFileSync(out, 'utf8')).toContain('got-term');
    expect(e.run(['kill', 'svc', '9']).stderr).toMatch(/not running/);
    expect(e.run(['delete', 'svc']).status).toBe(0);
    // --force: a running container is killed and removed; a missing one is no error.
    create('svc2', e.bundle('svc2', (c) => (c.process.args = ['sleep', '100'])));
    expect(e.run(['start', 'svc2']).status).toBe(0);
    expect(e.run(['kill', '--all', 'svc2', 'KILL']).status).toBe(0);
    await waitFor('svc2', 'stopped');
    expect(e.run(['delete', '--force', 'svc2']).status).toBe(0);
    expect(e.run(['delete', '--force', 'svc2']).status).toBe(0);
  });

  it('features, spec, --version, and --systemd-cgroup refused', () => {
    const f = JSON.parse(e.run(['features']).stdout);
    expect(f.hooks).toEqual(expect.arrayContaining(['createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop']));
    expect(f.linux.cgroup.systemd).toBe(false);
    expect(e.run(['--version']).stdout).toMatch(/^stratoswarm-oci version .*\nspec: 1\.\d+\.\d+/);
    const r = e.run(['--systemd-cgroup', 'state', 'x']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/--systemd-cgroup: the systemd cgroup manager is not supported/);
  });
});

/** Runs the CLI with stdout and stderr on `fd` (the container's too); returns its exit status. */
function runWithOutput(e: OciEnv, args: string[], fd: number): number | null {
  const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('STRATOSWARM_'))), STRATOSWARM_CGROUP_PARENT: e.cgroupParent };
  return spawnSync(OCI_CLI, ['--root', e.root, ...args], { stdio: ['ignore', fd, fd], env, timeout: 30_000 }).status;
}
