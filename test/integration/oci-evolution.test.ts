/**
 * `io.stratoswarm.evolution` on an OCI container: the resident server of the root runs its
 * generations against its cgroups, `state` shows the generation and the settings in force,
 * a server killed mid-way is replaced by the next call (through the front end, or the Node
 * CLI alone) and goes on from the state it kept,
 * and a bad annotation is refused by name.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxMissing, OCI_FRONT, ociEnv, type OciEnv } from '../helpers/oci.js';
import { SKIP_REASON } from '../helpers/runtime.js';
import { skipBecause } from '../helpers/skip.js';

const internalId = (id: string) => createHash('sha256').update(id).digest('hex').slice(0, 32);

/** The pids of the resident servers of `root`. */
function servers(root: string): number[] {
  const out: number[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (cmd.some((a) => a.endsWith('/oci/server.js')) && cmd.includes(root)) out.push(Number(p));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

describe.skipIf(skipBecause(SKIP_REASON || busyboxMissing() || (!fs.existsSync(OCI_FRONT) && 'the native front end is not built'), 'OCI evolution tests'))('stratoswarm-oci: io.stratoswarm.evolution', () => {
  let e: OciEnv;
  beforeAll(() => {
    e = ociEnv();
  });
  afterAll(() => e?.cleanup());

  const create = (id: string, bundle: string) => e.create(id, bundle);
  /** `state` through the native front end, as an engine calls it (it starts a server when none runs). */
  const state = (id: string) => {
    const r = spawnSync(OCI_FRONT, ['--root', e.root, 'state', id], { encoding: 'utf8', env: e.env, timeout: 30_000 });
    const log = join(e.root, 'oci-server.log');
    expect(r.status, `${r.stderr}${fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : ''}`).toBe(0);
    return JSON.parse(r.stdout) as { status: string; annotations?: Record<string, string> };
  };
  const generation = (id: string) => Number(state(id).annotations?.['io.stratoswarm.evolution.generation'] ?? -1);

  it('the server evolves a busy container\'s CPU limit within its bounds, shows it in state, and a new server resumes after a kill', async () => {
    const cpuMount = fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' '))
      .map((f) => f[4]!)
      .find((m) => m && fs.existsSync(`${m}/cpu.cfs_quota_us`));
    const b = e.bundle('evolving', (c) => {
      c.process.args = ['sh', '-c', 'while :; do :; done'];
      c.linux.resources = { ...c.linux.resources, cpu: { quota: 50000, period: 100000 } };
      c.annotations = { 'io.stratoswarm.evolution': JSON.stringify({ generationIntervalMs: 250, bounds: { cpuLimit: [0.2, 1] }, seed: 7 }), 'io.stratoswarm.personality': 'Explorer' };
    });
    const r = create('evolving', b);
    expect(r.status, r.stderr).toBe(0);
    const s = e.run(['start', 'evolving']);
    expect(s.status, s.stderr).toBe(0);
    // The Node CLI's start left a resident server behind to run the generations.
    const quotas = new Set<string>();
    const cgroupDir = cpuMount ? join(cpuMount, e.cgroupParent, internalId('evolving')) : undefined;
    for (let i = 0; i < 200 && generation('evolving') < 4; i++) {
      if (cgroupDir) quotas.add(fs.readFileSync(join(cgroupDir, 'cpu.cfs_quota_us'), 'utf8').trim());
      await delay(50);
    }
    const g1 = generation('evolving');
    expect(g1).toBeGreaterThanOrEqual(4);
    const applied = JSON.parse(state('evolving').annotations!['io.stratoswarm.evolution.applied']!) as { cpuLimit: number };
    expect(applied.cpuLimit).toBeGreaterThanOrEqual(0.2);
    expect(applied.cpuLimit).toBeLessThanOrEqual(1);
    if (cgroupDir) {
      // Proposals reached the cgroup: quotas other than the bundle's, all within the bounds (period kept).
      expect([...quotas].some((q) => q !== '50000')).toBe(true);
      for (const q of quotas) expect(Number(q)).toBeGreaterThanOrEqual(20000), expect(Number(q)).toBeLessThanOrEqual(100000);
      expect(fs.readFileSync(join(cgroupDir, 'cpu.cfs_period_us'), 'utf8').trim()).toBe('100000');
    }
    const [server] = servers(e.root);
    expect(server).toBeDefined();
    // A crash of the server: the front end's next call starts another, which goes on from the kept state.
    process.kill(server!, 'SIGKILL');
    // Gone with its socket: reaped, not only a zombie. A zombie leader's other threads (Node
    // has several) may still hold its files, and a call that connects then is never answered.
    const gone = () => !fs.existsSync(`/proc/${server}`);
    for (let i = 0; i < 200 && !gone(); i++) await delay(10);
    const before = generation('evolving');
    expect(before).toBeGreaterThanOrEqual(g1);
    for (let i = 0; i < 200 && generation('evolving') < before + 3; i++) await delay(50);
    expect(generation('evolving')).toBeGreaterThanOrEqual(before + 3);
    expect(servers(e.root)).toHaveLength(1);
    expect(servers(e.root)[0]).not.toBe(server);
    // A second one started by the Node CLI while that server runs: the CLI asks it to look.
    const second = e.bundle('evolving-2', (c) => {
      c.process.args = ['sh', '-c', 'while :; do :; done'];
      c.annotations = { 'io.stratoswarm.evolution': JSON.stringify({ generationIntervalMs: 250, bounds: { cpuLimit: [0.2, 1] } }) };
    });
    expect(create('evolving-2', second).status).toBe(0);
    expect(e.run(['start', 'evolving-2']).status).toBe(0);
    for (let i = 0; i < 200 && generation('evolving-2') < 2; i++) await delay(50);
    expect(generation('evolving-2')).toBeGreaterThanOrEqual(2);
    expect(servers(e.root)).toHaveLength(1);
    // Another crash, and now only the Node CLI calls (no front end): its next call on an
    // evolving container starts a server again, which goes on.
    const [third] = servers(e.root);
    process.kill(third!, 'SIGKILL');
    for (let i = 0; i < 200 && fs.existsSync(`/proc/${third}`); i++) await delay(10);
    const nodeState = () => {
      const r = e.run(['state', 'evolving']);
      expect(r.status, r.stderr).toBe(0);
      return Number((JSON.parse(r.stdout) as { annotations: Record<string, string> }).annotations['io.stratoswarm.evolution.generation']);
    };
    const serverLog = () => (fs.existsSync(join(e.root, 'oci-server.log')) ? fs.readFileSync(join(e.root, 'oci-server.log'), 'utf8') : '(no server log)');
    const atCrash = nodeState();
    expect(servers(e.root), `killed ${third}; ${serverLog()}`).toHaveLength(1);
    for (let i = 0; i < 200 && nodeState() < atCrash + 2; i++) await delay(50);
    expect(nodeState(), serverLog()).toBeGreaterThanOrEqual(atCrash + 2);
    expect(servers(e.root), serverLog()).toHaveLength(1);
    expect(e.run(['delete', '--force', 'evolving-2']).status).toBe(0);
    expect(e.run(['delete', '--force', 'evolving']).status).toBe(0);
  });

  it('a bad evolution annotation is refused at create, by name, with nothing left', () => {
    const b = e.bundle('bad-evolution', (c) => {
      c.annotations = { 'io.stratoswarm.evolution': JSON.stringify({ generationIntervalMs: 1, bounds: { diskWeight: [1, 2], cpuLimit: 'x' }, speed: 3 }) };
    });
    const r = create('bad-evolution', b);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('annotations["io.stratoswarm.evolution"].speed: unknown field');
    expect(r.stderr).toContain('annotations["io.stratoswarm.evolution"].bounds.diskWeight: unknown gene (one of cpuLimit, memoryLimit, cpuWeight)');
    expect(r.stderr).toContain('annotations["io.stratoswarm.evolution"].bounds.cpuLimit: expected [min, max]');
    expect(r.stderr).toMatch(/annotations\["io\.stratoswarm\.evolution"\]\.generationIntervalMs: expected at least \d+ ms, got 1/);
    expect(fs.existsSync(join(e.root, internalId('bad-evolution')))).toBe(false);
    const t = create('bad-json', e.bundle('bad-json', (c) => {
      c.annotations = { 'io.stratoswarm.evolution': 'yes please' };
    }));
    expect(t.status).toBe(1);
    expect(t.stderr).toContain('annotations["io.stratoswarm.evolution"]: expected "true", "false" or a JSON object, got "yes please"');
  });
});
