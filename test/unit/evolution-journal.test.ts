import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CounterBatch } from '../../src/evolution/cgroup-counters.js';
import { EvolutionEngine } from '../../src/evolution/engine.js';
import { COMPACT_AFTER, EvolutionJournal, recordWidth, replayJournal, type JournalEntry } from '../../src/evolution/journal.js';
import { detectCgroups, MemoryCgroupFs } from '../../src/isolation/index.js';
import { Personality } from '../../src/personality/index.js';

const genes = { cpuLimit: { min: 0.1, max: 8 }, memoryLimit: { min: 64 * 2 ** 20, max: 8 * 2 ** 30 }, cpuWeight: { min: 1, max: 10_000 } };
const initial = { cpuLimit: 2, memoryLimit: 2 ** 30, cpuWeight: 100 };
const fitnessOf = (g: Record<string, number>, k: number): number =>
  (100 - (Math.log(g.cpuLimit!) - 0.3) ** 2 * 40 - Math.log2(g.memoryLimit! / 2 ** 29) ** 2 * 25) * (1 + 0.05 * Math.sin(k * 12.9898));

const dirs: string[] = [];
function tmp(): string {
  const d = fs.mkdtempSync(join(tmpdir(), 'ss-journal-'));
  dirs.push(d);
  return join(d, 'evolution.journal');
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** Runs `n` generations, journaling each as the controller does. */
function run(e: EvolutionEngine, journal: EvolutionJournal, from: number, n: number): void {
  for (let k = from; k < from + n; k++) {
    const g = e.propose();
    const record = k % 11 === 5 ? e.reportFailure(g, 'update refused') : e.report(g, fitnessOf(g, k));
    e.propose();
    const entry: JournalEntry = { engine: e.snapshot({ history: 0 }), applied: { ...g }, record };
    journal.append([entry]);
  }
}

describe('evolution journal', () => {
  it('resumes exactly: the engine restored from base + journal proposes and records what the original does', () => {
    const path = tmp();
    const a = new EvolutionEngine({ genes, initial, seed: 4, personality: Personality.Explorer });
    const base = a.snapshot();
    const j = EvolutionJournal.create(path, base.genes.map((g) => g.name));
    run(a, j, 0, 40);
    j.close();
    const r = replayJournal(path, base)!;
    expect(r.records).toBe(40);
    expect(fs.statSync(path).size).toBe(16 + 40 * (8 + 8 * recordWidth(3)));
    const b = EvolutionEngine.restore(JSON.parse(JSON.stringify(r.engine)));
    const sa = a.state();
    const sb = b.state();
    expect({ ...sb, history: [] }).toEqual({ ...sa, history: [] });
    // The history is rebuilt from the records (the error text stays in the log).
    expect(sb.history.map((h) => h.generation)).toEqual(sa.history.map((h) => h.generation));
    expect(sb.history.map((h) => ({ ...h, error: undefined }))).toEqual(sa.history.map((h) => ({ ...h, error: undefined })));
    expect(sb.history.find((h) => h.generation === 17)?.error).toMatch(/failed/);
    for (let k = 40; k < 100; k++) {
      const ga = a.propose();
      expect(b.propose()).toEqual(ga);
      expect(b.report(ga, fitnessOf(ga, k))).toEqual(a.report(ga, fitnessOf(ga, k)));
    }
  });

  it('stops at a record cut short or corrupted, and ignores records no newer than the base', () => {
    const path = tmp();
    const e = new EvolutionEngine({ genes, initial, seed: 9 });
    const base = e.snapshot();
    const j = EvolutionJournal.create(path, base.genes.map((g) => g.name));
    run(e, j, 0, 10);
    j.close();
    const size = 8 + 8 * recordWidth(3);
    const whole = fs.readFileSync(path);
    fs.writeFileSync(path, whole.subarray(0, 16 + 7 * size + 100)); // the 8th record torn
    expect(replayJournal(path, base)!.engine.generation).toBe(7);
    const flipped = Buffer.from(whole);
    flipped[16 + 4 * size + 40]! ^= 1; // the 5th record's payload
    fs.writeFileSync(path, flipped);
    expect(replayJournal(path, base)!.engine.generation).toBe(4);
    // A base written after the journal (a crash between compaction's two steps).
    fs.writeFileSync(path, whole);
    const later = { ...base, generation: 10 };
    expect(replayJournal(path, later)).toBeUndefined();
    // Another gene set, or no journal at all.
    expect(replayJournal(path, { ...base, genes: base.genes.slice(0, 2) })).toBeUndefined();
    expect(replayJournal(join(path, '..', 'none'), base)).toBeUndefined();
  });

  it('reset() truncates to the header; records then start over', () => {
    const path = tmp();
    const e = new EvolutionEngine({ genes, initial, seed: 1 });
    const j = EvolutionJournal.create(path, ['cpuLimit', 'memoryLimit', 'cpuWeight']);
    run(e, j, 0, 5);
    expect(j.records).toBe(5);
    const base = e.snapshot();
    j.reset();
    expect(fs.statSync(path).size).toBe(16);
    run(e, j, 5, 3);
    j.close();
    expect(replayJournal(path, base)!.records).toBe(3);
    expect(COMPACT_AFTER).toBeGreaterThan(10);
  });
});

describe('counter batch', () => {
  it('reads the counters of every container that asks in the same turn with one native call', async () => {
    const layout = detectCgroups(
      [
        '30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755',
        '31 30 0:27 / /sys/fs/cgroup/cpu rw shared:10 - cgroup cgroup rw,cpu',
        '32 30 0:28 / /sys/fs/cgroup/cpuacct rw shared:11 - cgroup cgroup rw,cpuacct',
        '33 30 0:29 / /sys/fs/cgroup/memory rw shared:12 - cgroup cgroup rw,memory',
      ].join('\n'),
    );
    const k = MemoryCgroupFs.forLayout(layout);
    const batch = new CounterBatch(k);
    const open = (id: string) => {
      for (const m of ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup/cpuacct', '/sys/fs/cgroup/memory']) k.mkdir(`${m}/p/${id}`);
      k.files.set(`/sys/fs/cgroup/cpuacct/p/${id}/cpuacct.usage`, `${id.length * 1000}\n`);
      k.files.set(`/sys/fs/cgroup/cpu/p/${id}/cpu.stat`, 'nr_periods 10\nnr_throttled 4\nthrottled_time 7000\n');
      return batch.open(layout, (mount) => `${mount}/p/${id}`);
    };
    const a = open('a');
    const bb = open('bb');
    const [ra, rb] = await Promise.all([a.read(), bb.read()]);
    expect(batch.reads).toBe(1);
    expect(ra).toEqual({ cpuNs: 1000, memoryBytes: 0, oomKills: 0, periods: 10, throttledPeriods: 4, throttledNs: 7000 });
    expect(rb.cpuNs).toBe(2000);
    // A container whose cgroup went away fails alone, naming the file.
    k.files.delete('/sys/fs/cgroup/cpuacct/p/bb/cpuacct.usage');
    const [ok, gone] = await Promise.allSettled([a.read(), bb.read()]);
    expect(batch.reads).toBe(2);
    expect(ok.status).toBe('fulfilled');
    expect(gone.status === 'rejected' && (gone.reason as Error).message).toBe('pread `/sys/fs/cgroup/cpuacct/p/bb/cpuacct.usage`: ENODEV (the cgroup is gone)');
    a.close();
    bb.close();
    expect(k.counters.size).toBe(0);
    await expect(a.read()).rejects.toThrow(/after close/);
  });
});
