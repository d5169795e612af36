/**
 * CDI hooks in the runtime's namespaces: the container state on stdin, the hook's own
 * environment and argv, a failure or a timeout reported with the hook's path and stderr.
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runHooks } from '../../src/gpu/hooks.js';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(join(tmpdir(), 'ss-hooks-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const script = (name: string, body: string) => {
  fs.writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return join(dir, name);
};
const state = { id: 'abc', pid: 1, status: 'created' as const, bundle: '/b' };

describe('CDI hooks', () => {
  it('runs the hooks of one phase in order, with the state on stdin, their env and args', async () => {
    const out = join(dir, 'out');
    const a = script('a', `cat > ${out}.state; echo "$1 $X" >> ${out}`);
    const b = script('b', `echo second >> ${out}`);
    await runHooks(
      [
        { hookName: 'createRuntime', path: a, args: ['a', 'first'], env: ['X=y'] },
        { hookName: 'poststop', path: b },
        { hookName: 'createRuntime', path: b },
      ],
      'createRuntime',
      state,
    );
    expect(fs.readFileSync(out, 'utf8')).toBe('first y\nsecond\n');
    expect(JSON.parse(fs.readFileSync(`${out}.state`, 'utf8'))).toEqual({ ociVersion: '1.0.2', ...state });
  });

  it('a failing hook names its path, status and stderr; one past its timeout is killed', async () => {
    const bad = script('bad', 'echo broken >&2; exit 4');
    await expect(runHooks([{ hookName: 'poststart', path: bad }], 'poststart', state)).rejects.toThrow(`poststart hook ${bad} exited with status 4: broken`);
    const slow = script('slow', 'exec sleep 5');
    await expect(runHooks([{ hookName: 'createRuntime', path: slow, timeout: 1 }], 'createRuntime', state)).rejects.toMatchObject({ code: 'ETIMEDOUT', message: `createRuntime hook ${slow} did not finish within 1 s` });
    await expect(runHooks([{ hookName: 'createRuntime', path: join(dir, 'missing') }], 'createRuntime', state)).rejects.toThrow(/createRuntime hook .*missing: spawn .*ENOENT/);
  });
});
