import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { bashCompletion, fishCompletion, verbSpecs, zshCompletion } from '../../src/cli/completion.js';
import { buildProgram, main } from '../../src/cli/program.js';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => (out.push(String(s)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((s) => (err.push(String(s)), true));
  return { out: () => out.join(''), err: () => err.join('') };
}

afterEach(() => {
  vi.restoreAllMocks();
  process.exitCode = undefined;
});

const VERBS = ['run', 'create', 'start', 'ps', 'inspect', 'logs', 'exec', 'attach', 'stop', 'kill', 'rm', 'pause', 'unpause', 'update', 'stats', 'top', 'wait', 'checkpoint', 'restore', 'migrate', 'images', 'pull', 'import', 'rmi', 'prune', 'personalities', 'evolution', 'gpus', 'topology', 'info', 'version', 'completion', 'oci'];

describe('the command tree', () => {
  it('has every verb, each with --help', async () => {
    expect(buildProgram().commands.map((c) => c.name())).toEqual(VERBS);
    for (const verb of VERBS) {
      const io = capture();
      expect(await main([verb, '--help'])).toBe(0);
      expect(io.out()).toContain(`Usage: stratoswarm ${verb}`);
      vi.restoreAllMocks();
    }
  });

  it('offers --format json on every verb that prints data', () => {
    const withFormat = buildProgram().commands.filter((c) => c.options.some((o) => o.long === '--format')).map((c) => c.name());
    expect(withFormat).toEqual(['ps', 'inspect', 'logs', 'stats', 'top', 'checkpoint', 'restore', 'migrate', 'images', 'pull', 'import', 'rmi', 'prune', 'personalities', 'evolution', 'gpus', 'topology', 'info', 'version']);
  });

  it('reports bad usage on one line, naming the verb, with exit code 125', async () => {
    for (const [argv, line] of [
      [['run', '--bogus', 'x'], "stratoswarm: run: unknown option '--bogus'\n"],
      [['stop'], "stratoswarm: stop: missing required argument 'container'\n"],
      [['frob'], "stratoswarm: unknown command 'frob'\n"],
      [['completion', 'tcsh'], 'stratoswarm: completion: '],
    ] as const) {
      const io = capture();
      expect(await main([...argv])).toBe(125);
      expect(io.err().startsWith(line)).toBe(true);
      expect(io.err().trimEnd().split('\n')).toHaveLength(1);
      vi.restoreAllMocks();
    }
  });

  it('runs personalities without a runtime, as a table and as JSON', async () => {
    let io = capture();
    expect(await main(['personalities'])).toBe(0);
    expect(io.out()).toMatch(/^PERSONALITY\s+RISK \(r\)/);
    expect(io.out()).toContain('Conservative');
    vi.restoreAllMocks();
    io = capture();
    expect(await main(['personalities', '--format', 'json'])).toBe(0);
    const data = JSON.parse(io.out());
    expect(data.personalities.map((p: { name: string }) => p.name)).toEqual(['Conservative', 'Aggressive', 'Balanced', 'Explorer', 'Cooperative']);
    expect(data.decisions.length).toBeGreaterThan(10);
  });
});

describe('shell completion', () => {
  const program = buildProgram();

  it('names every verb and its flags', () => {
    const specs = verbSpecs(program);
    expect(specs.find((v) => v.name === 'run')!.flags.map((f) => f.long)).toContain('--pids-limit');
    expect(specs.find((v) => v.name === 'logs')!.container).toBe(true);
    for (const script of [bashCompletion(program), zshCompletion(program), fishCompletion(program)]) {
      for (const verb of VERBS) expect(script).toContain(verb);
      expect(script).toContain('cpuset-cpus');
    }
  });

  it('writes a bash script bash accepts', () => {
    const r = spawnSync('bash', ['-n'], { input: bashCompletion(program), encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
