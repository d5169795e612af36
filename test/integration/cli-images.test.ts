/**
 * The image verbs as a user runs them: pull (from docker-registry on loopback, through
 * STRATOSWARM_INSECURE_REGISTRIES), import, images, rmi and prune, tables and --format json.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REGISTRY_SKIP, startRegistry, writeLayout, type TestRegistry } from '../helpers/registry.js';
import { SKIP_REASON, testRuntime, type TestRuntime } from '../helpers/runtime.js';
import { skipBecause } from '../helpers/skip.js';

const CLI = join(import.meta.dirname, '..', '..', 'dist/src/cli/main.js');
let t: TestRuntime;
let reg: TestRegistry;
let work: string;

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('STRATOSWARM_')));
  env.STRATOSWARM_CGROUP_PARENT = t.runtime.options.cgroupParent;
  env.STRATOSWARM_INSECURE_REGISTRIES = reg.host;
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, '--state-root', t.stateRoot, '--image-root', t.runtime.options.imageRoot, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const reason = SKIP_REASON || REGISTRY_SKIP || (!fs.existsSync(CLI) ? 'dist/ not built (npm run build:ts)' : '');

describe.skipIf(skipBecause(reason, 'image CLI tests'))('image verbs (root, docker-registry)', () => {
  beforeAll(async () => {
    work = fs.mkdtempSync(join(tmpdir(), 'ss-cli-img-'));
    t = testRuntime();
    reg = await startRegistry();
    writeLayout(join(work, 'app'), [{ tag: 'v1', layers: [{ entries: [{ name: 'hello', type: 'file', data: Buffer.from('hi') }] }, { entries: [{ name: 'two', type: 'file', data: Buffer.from('2') }] }] }]);
    reg.push(join(work, 'app'), 'v1', 'cli/app:v1');
  });
  afterAll(async () => {
    await t?.cleanup();
    await reg?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('pull prints a line per layer off a terminal and the digest; --format json is the result', async () => {
    const r = await cli(['pull', `${reg.host}/cli/app:v1`]);
    expect(r.code).toBe(0);
    expect(r.stderr.match(/: Pull complete \(/g)).toHaveLength(2);
    expect(r.stdout).toMatch(/^Digest: sha256:[0-9a-f]{64}\nStatus: pulled 127\.0\.0\.1:\d+\/cli\/app:v1 in /);
    const j = JSON.parse((await cli(['pull', '--format', 'json', `${reg.host}/cli/app:v1`])).stdout);
    expect(j).toMatchObject({ ref: `${reg.host}/cli/app:v1`, layers: [expect.stringMatching(/^sha256:/), expect.stringMatching(/^sha256:/)] });
    const bad = await cli(['pull', 'Bad::ref']);
    expect([bad.code, bad.stderr]).toEqual([125, expect.stringMatching(/^stratoswarm: pull: invalid image reference: image: "Bad::ref": .*\n$/)]);
  });

  it('import, images (table and json), rmi and prune', async () => {
    const imp = await cli(['import', join(work, 'app'), 'local/app:v1']);
    expect([imp.code, imp.stdout]).toEqual([0, 'Loaded image: local/app:v1\n']);
    const table = (await cli(['images'])).stdout;
    expect(table).toMatch(/^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE\s+LAYERS\s+PLATFORM\n/);
    expect(table).toMatch(/local\/app\s+v1\s+[0-9a-f]{12}\s+.*\s+2\s+linux\/amd64/);
    const list = JSON.parse((await cli(['images', '--format', 'json'])).stdout) as { ref: string; layers: string[] }[];
    expect(list.map((i) => i.ref).sort()).toEqual([`${reg.host}/cli/app:v1`, 'local/app:v1', 'stratoswarm/base-agent:latest']);
    expect((await cli(['rmi', 'local/app:v1', `${reg.host}/cli/app:v1`])).stdout).toBe(`Untagged: local/app:v1\nUntagged: ${reg.host}/cli/app:v1\n`);
    const missing = await cli(['rmi', 'no/such:1']);
    expect([missing.code, missing.stderr]).toEqual([1, 'stratoswarm: rmi: remove image "no/such:1": not found\n']);
    const pruned = JSON.parse((await cli(['prune', '--format', 'json'])).stdout);
    expect(pruned.layers).toHaveLength(2);
    expect(pruned.diskUsage.images).toBe(1);
    expect((await cli(['run', '--rm', 'stratoswarm/base-agent', 'echo', 'still here'])).stdout).toBe('still here\n');
  });
});
