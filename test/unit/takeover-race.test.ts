/**
 * Stale claims taken over by several processes at once: a name claim and a user namespace
 * id range whose holders are gone, raced for by processes that all start at one instant.
 * Exactly one wins each round; the rest are told who holds it (or that nothing is free).
 * And the flock sections under both: a lock a live process holds makes others wait and then
 * fail naming it; one whose holder was killed is free at once.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { withFileLock } from '../../src/kernel/file-lock.js';

const dirs: string[] = [];
function tmp(): string {
  const d = fs.mkdtempSync(join(tmpdir(), 'ss-takeover-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const dist = (p: string) => {
  const url = new URL(`../../dist/src/${p}`, import.meta.url);
  if (!fs.existsSync(url)) throw new Error('dist/ is not built: run npm run build');
  return url.href;
};

/** Runs `body` in `n` processes that all begin at the same instant; their stdout lines. */
async function race(n: number, body: string): Promise<string[]> {
  const at = Date.now() + 400;
  const script = `const at = ${at}; while (Date.now() < at); ${body}`;
  return Promise.all(
    Array.from({ length: n }, (_, i) => new Promise<string>((resolve) => {
      const p = spawn(process.execPath, ['--input-type=module', '-e', script, String(i)]);
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      p.stderr.on('data', (d: Buffer) => (out += d.toString()));
      p.on('close', () => resolve(out.trim()));
    })),
  );
}

describe('stale claims raced for', () => {
  it('a stale name claim: exactly one of six takers wins, every round', { timeout: 60_000 }, async () => {
    const state = dist('state.js');
    for (let round = 0; round < 5; round++) {
      const root = tmp();
      fs.mkdirSync(join(root, 'names'), { recursive: true });
      const file = join(root, 'names', 'web');
      fs.writeFileSync(file, 'd'.repeat(32)); // its container has no state: stale once old
      const old = new Date(Date.now() - 120_000);
      fs.utimesSync(file, old, old);
      const outs = await race(6, `
        const { StateStore } = await import('${state}');
        const id = String(process.argv[1]).padStart(32, 'a');
        const held = new StateStore(${JSON.stringify(root)}).claimName('web', id);
        console.log(held === undefined ? 'won ' + id : 'held ' + held);`);
      const winners = outs.filter((o) => o.startsWith('won '));
      expect(winners, outs.join('\n')).toHaveLength(1);
      const winner = winners[0]!.slice(4);
      expect(outs.filter((o) => o !== winners[0])).toEqual(Array(5).fill(`held ${winner}`));
      expect(fs.readFileSync(file, 'utf8')).toBe(winner);
    }
  });

  it('a stale id range: exactly one of six takers gets it, every round', { timeout: 60_000 }, async () => {
    const idmap = dist('idmap.js');
    for (let round = 0; round < 5; round++) {
      const root = tmp();
      fs.mkdirSync(join(root, 'idmap'), { recursive: true });
      fs.writeFileSync(join(root, 'idmap', '0'), 'gone');
      const outs = await race(6, `
        const { IdRangeAllocator } = await import('${idmap}');
        const a = new IdRangeAllocator(${JSON.stringify(root)}, (o) => o !== 'gone', 100000, 65536, 1);
        try { console.log('got ' + a.allocate('p' + process.argv[1]).index); } catch (e) { console.log(e.code); }`);
      expect(outs.filter((o) => o === 'got 0'), outs.join('\n')).toHaveLength(1);
      expect(outs.filter((o) => o === 'EBUSY')).toHaveLength(5);
      expect(fs.readFileSync(join(root, 'idmap', '0'), 'utf8')).toMatch(/^p\d$/);
    }
  });
});

describe('flock sections', () => {
  it('a live holder makes others wait, then fail naming it; a killed holder frees the lock at once', async () => {
    const lock = join(tmp(), 'lock');
    const lockUrl = dist('kernel/file-lock.js');
    const holder = spawn(process.execPath, ['--input-type=module', '-e', `
      const { withFileLock } = await import('${lockUrl}');
      withFileLock(${JSON.stringify(lock)}, 'test', () => { console.log('held'); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000); });`]);
    await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
    try {
      expect(() => withFileLock(lock, 'the test section', () => 1, 300)).toThrow(new RegExp(`the test section: lock ${lock} is held by pid ${holder.pid} for more than 0.3 s`));
    } finally {
      holder.kill('SIGKILL');
      await new Promise((r) => holder.once('close', r));
    }
    expect(withFileLock(lock, 'test', () => 'mine', 0)).toBe('mine');
    // A lock file some dead process left (no flock held) blocks nothing either.
    fs.writeFileSync(lock, String(spawnSync('true').pid));
    expect(withFileLock(lock, 'test', () => 'again', 0)).toBe('again');
  });
});
