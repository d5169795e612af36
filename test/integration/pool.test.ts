import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Container, ContainerConfig } from '../../src/index.js';
import { runtimeParts, type Runtime } from '../../src/runtime.js';
import { IS_ROOT, SKIP_REASON, testRuntime, useTestRuntime } from '../helpers/runtime.js';
import { skipBecause } from '../helpers/skip.js';

const IMAGE = 'stratoswarm/base-agent:latest';
// What a container shows of itself, inside: identity, confinement, mounts, limits, env.
const PROBE = [
  'id',
  'hostname',
  'grep -E "^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp|Seccomp_filters|Cpus_allowed_list):" /proc/self/status',
  'ulimit -n -u',
  'env | grep -v ^HOSTNAME= | sort',
  // mount point, fs type and options, without the ids and devices that differ per container
  "awk '{ for (i = 7; $i != \"-\"; i++); print $5, $(i+1), $6 }' /proc/self/mountinfo | sort",
  'cat /proc/self/cgroup',
  'ls /dev | sort',
].join('; echo ---; ') + '; echo END; exec sleep 1000';

function config(name: string, more?: (b: ReturnType<typeof ContainerConfig.builder>) => void): ContainerConfig {
  const b = ContainerConfig.builder().name(name).image(IMAGE).command(['sh', '-c', PROBE]).env({ AGENT: 'x', MODE: 'pool' }).cpuLimit(0.5).memoryLimit(64 * 1024 * 1024).pidsLimit(50);
  more?.(b);
  return b.build();
}

function mountsUnder(root: string): number {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(root)).length;
}

function processesOf(ids: string[]): number {
  let n = 0;
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cg = fs.readFileSync(`/proc/${p}/cgroup`, 'utf8');
      if (ids.some((id) => cg.includes(id))) n++;
    } catch {
      // exited meanwhile
    }
  }
  return n;
}

/** The cgroup files a container's limits are written to, read back (values only). */
function limitFiles(rt: Runtime, id: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const dir of runtimeParts(rt).cgroups.dirs(id)) {
    for (const f of ['cpu.max', 'cpu.cfs_quota_us', 'cpu.cfs_period_us', 'cpu.shares', 'cpu.weight', 'memory.max', 'memory.limit_in_bytes', 'memory.swap.max', 'memory.memsw.limit_in_bytes', 'memory.low', 'memory.soft_limit_in_bytes', 'pids.max', 'cpuset.cpus', 'cpuset.mems', 'devices.list']) {
      try {
        out[`${dir.split('/').slice(0, 5).join('/')}/${f}`] = fs.readFileSync(join(dir, f), 'utf8').trim();
      } catch {
        // not this controller's file
      }
    }
  }
  return out;
}

describe.skipIf(skipBecause(!IS_ROOT && SKIP_REASON, 'warm pool'))('warm pool (root, real kernel)', () => {
  let rt: Runtime;
  useTestRuntime((x) => (rt = x.runtime));

  it('a pooled container behaves exactly like a cold one: identity, confinement, mounts, limits, env, security report', async () => {
    const cold = await Container.create(config('cold'), { runtime: rt });
    expect(rt.pool.stats().shapes).toHaveLength(0);
    const st = await rt.pool.configure({ image: IMAGE }, { size: 2 });
    expect(st.ready).toBe(2);
    const warm = await Container.create(config('warm'), { runtime: rt });
    expect(rt.pool.stats()).toMatchObject({ hits: 1, misses: 0 });

    // Outside: the limits in the cgroup files, and the security report read from the kernel.
    const strip = (files: Record<string, string>, id: string) => Object.fromEntries(Object.entries(files).map(([k, v]) => [k.replace(id, 'ID'), v]));
    expect(strip(limitFiles(rt, warm.id), warm.id)).toEqual(strip(limitFiles(rt, cold.id), cold.id));
    await cold.start();
    await warm.start();
    for (const c of [cold, warm]) for (let i = 0; i < 500 && !c.logs().stdout.includes('END'); i++) await new Promise((r) => setTimeout(r, 10));
    // The same report but for what is each container's own: its id, pid, namespace inodes
    // and host id range.
    const own = async (c: Container) => {
      const hostId = runtimeParts(rt).state.load(c.id).idRange!.hostId;
      const text = JSON.stringify(await c.securityReport(), (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v))
        .replaceAll(c.id, 'ID')
        .replace(/"(inode|pid)":\d+/g, '"$1":0')
        .replace(new RegExp(`\\b${hostId}\\b`, 'g'), '"HOSTID"');
      return JSON.parse(text) as unknown;
    };
    expect(await own(warm)).toEqual(await own(cold));
    await cold.stop({ timeoutMs: 100 });
    await warm.stop({ timeoutMs: 100 });
    // Inside: everything but the hostname (its id) is the same.
    const [oc, ow] = [cold.logs().stdout, warm.logs().stdout];
    expect(ow.replace(warm.id.slice(0, 12), 'HOST')).toBe(oc.replace(cold.id.slice(0, 12), 'HOST'));
    expect(ow).toContain('AGENT=x');
    expect(ow).toContain('uid=0(root)');
    expect(warm.name).toBe('warm');
    expect((await Container.list({ runtime: rt })).map((s) => s.name).sort()).toEqual(['cold', 'warm']);
    await cold.remove();
    await warm.remove();
  });

  it('applies what differs when taken: user, hostname, env, argv; refills in the background', async () => {
    await rt.pool.configure({ image: IMAGE }, { size: 2 });
    const c = await Container.create(
      ContainerConfig.builder().name('differs').image(IMAGE).user('1000:1000').hostname('agent-7').env({ X: '1' }).command(['sh', '-c', 'echo $(id -u):$(id -g) $(hostname) $X $HOSTNAME']).build(),
      { runtime: rt },
    );
    await c.start();
    await c.wait();
    expect(c.logs().stdout.trim()).toBe('1000:1000 agent-7 1 agent-7');
    await c.remove();
    for (let i = 0; i < 200 && rt.pool.stats().shapes[0]!.ready < 2; i++) await new Promise((r) => setTimeout(r, 20));
    const s = rt.pool.stats().shapes[0]!;
    expect(s.ready).toBe(2);
    expect(s.refillMsP50).toBeGreaterThan(0);
    expect(s.idleMemoryBytes).toBeGreaterThan(0);
  });

  it('a command that cannot run fails at start, as for a cold container', async () => {
    const c = await Container.create(ContainerConfig.builder().name('nocmd').image(IMAGE).command(['/no/such']).build(), { runtime: rt });
    await expect(c.start()).rejects.toMatchObject({ step: 'resolve-exec', errno: 'ENOENT' });
    expect((await c.wait()).exitCode).toBe(127);
    await c.remove();
  });

  it('a pooled init killed from outside is dropped, never handed out', async () => {
    await rt.pool.configure({ image: IMAGE }, { size: 1 });
    const parts = runtimeParts(rt);
    const victim = parts.state.list().find((r) => r.pool)!;
    process.kill(victim.pid!, 'SIGKILL');
    for (let i = 0; i < 100 && parts.state.list().some((r) => r.id === victim.id); i++) await new Promise((r) => setTimeout(r, 20));
    expect(parts.state.list().some((r) => r.id === victim.id)).toBe(false);
    const c = await Container.create(ContainerConfig.builder().name('after-kill').image(IMAGE).command(['true']).build(), { runtime: rt });
    expect(c.id).not.toBe(victim.id);
    await c.start();
    expect((await c.wait()).exitCode).toBe(0);
    await c.remove();
  });

  it('shrink and close leave no process, mount, cgroup or state behind', async () => {
    await rt.pool.configure({ image: IMAGE }, { size: 3 });
    const parts = runtimeParts(rt);
    const pooled = () => parts.state.list().filter((r) => r.pool).map((r) => r.id);
    const ids = pooled();
    expect(ids.length).toBe(3);
    expect(processesOf(ids)).toBe(3);
    await rt.pool.configure({ image: IMAGE }, { size: 1 });
    expect(pooled().length).toBe(1);
    const gone = ids.filter((id) => !pooled().includes(id));
    expect(processesOf(gone)).toBe(0);
    for (const id of gone) {
      expect(parts.cgroups.list()).not.toContain(id);
      expect(fs.existsSync(parts.state.dir(id))).toBe(false);
      expect(mountsUnder(id)).toBe(0);
      expect(fs.existsSync(parts.storageDir(id))).toBe(false);
    }
    await rt.pool.close();
    expect(pooled()).toEqual([]);
    expect(processesOf(ids)).toBe(0);
    for (const id of ids) expect(parts.cgroups.list()).not.toContain(id);
    expect(ids.reduce((n, id) => n + mountsUnder(id), 0)).toBe(0);
  });
});

describe.skipIf(skipBecause(!IS_ROOT && SKIP_REASON, 'warm pool ownership'))('warm pool ownership (root, real kernel)', () => {
  it('the pool of a host agent that died is removed by the next runtime on the state root', async () => {
    const t = testRuntime();
    try {
      const script = `
        import { Runtime } from ${JSON.stringify(join(process.cwd(), 'dist/src/index.js'))};
        const rt = new Runtime({ stateRoot: ${JSON.stringify(t.stateRoot)}, imageRoot: ${JSON.stringify(t.runtime.options.imageRoot)}, cgroupParent: ${JSON.stringify(t.runtime.options.cgroupParent)}, logLevel: 'silent', env: {} });
        await rt.pool.configure({ image: ${JSON.stringify(IMAGE)} }, { size: 2 });
        (await import('node:fs')).writeFileSync(${JSON.stringify(join(t.stateRoot, 'agent.ready'))}, '');
        setInterval(() => {}, 1000);`;
      const file = join(t.stateRoot, 'agent.mjs');
      fs.writeFileSync(file, script);
      const ready = join(t.stateRoot, 'agent.ready');
      const out = execFileSync('bash', ['-c', `node ${file} & pid=$!; for i in $(seq 1 400); do [ -e ${ready} ] && break; sleep 0.05; done; kill -9 $pid; wait $pid; echo killed`], { encoding: 'utf8' });
      expect(out).toContain('killed');
      const parts = runtimeParts(t.runtime);
      const ids = parts.state.list().filter((r) => r.pool).map((r) => r.id);
      expect(ids.length).toBeGreaterThan(0);
      const report = await t.runtime.reconcile();
      for (const id of ids) expect(report.removed).toContain(id);
      expect(parts.state.list().filter((r) => r.pool)).toEqual([]);
      expect(processesOf(ids)).toBe(0);
    } finally {
      await t.cleanup();
    }
  });
});

