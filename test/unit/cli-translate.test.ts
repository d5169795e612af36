import { describe, expect, it } from 'vitest';
import { ConfigError, Personality, RuntimeError } from '../../src/index.js';
import { errorLine, exitCodeFor, processExitCode, SilentExit, UsageError } from '../../src/cli/errors.js';
import { configFromFlags, parseEnv, parseRestart, parseVolume, updateFromFlags } from '../../src/cli/translate.js';

const IMAGE = 'stratoswarm/base-agent';

describe('run/create flags → ContainerConfig', () => {
  it('translates every flag', () => {
    const c = configFromFlags(IMAGE, ['sh', '-c', 'echo hi'], {
      name: 'agent-1',
      env: ['A=1', 'B=x=y', 'FROM_HOST'],
      volume: ['/data:/data:ro', '/tmp:/scratch'],
      label: ['team=a', 'flag'],
      personality: 'explorer',
      cpus: '1.5',
      memory: '512m',
      pidsLimit: '64',
      gpus: 'device=0,1',
      cpusetCpus: '0-1',
      network: 'host',
      user: '1000:1000',
      workdir: '/work',
      hostname: 'box',
      readOnly: true,
    }, { env: { FROM_HOST: 'h' } });
    const s = c.spec;
    expect(s.name).toBe('agent-1');
    expect(s.image).toBe(IMAGE);
    expect(s.command).toEqual(['sh', '-c', 'echo hi']);
    expect(s.env).toEqual({ A: '1', B: 'x=y', FROM_HOST: 'h' });
    expect(s.volumes).toEqual([
      { source: '/data', target: '/data', readOnly: true },
      { source: '/tmp', target: '/scratch', readOnly: false },
    ]);
    expect(s.labels).toEqual({ team: 'a', flag: '' });
    expect(s.personality).toBe(Personality.Explorer);
    expect(s.resources).toEqual({ cpuLimit: 1.5, memoryLimit: 512 * 1024 ** 2, pidsLimit: 64, gpuDevices: [0, 1], cpusetCpus: '0-1' });
    expect(s.network).toBe('host');
    expect(s.user).toBe('1000:1000');
    expect(s.workingDir).toBe('/work');
    expect(s.hostname).toBe('box');
    expect(s.security).toEqual({ readonlyRoot: true });
  });

  it('leaves the image command alone and generates a name when none is given', () => {
    const c = configFromFlags(IMAGE, [], {});
    expect(c.spec.command).toBeUndefined();
    expect(c.spec.name).toMatch(/^ss-[0-9a-f]{8}$/);
    expect(c.spec.network).toBe('none');
  });

  it('--entrypoint replaces the image\'s Entrypoint; the command becomes its arguments', () => {
    const c = configFromFlags('stratoswarm/base-agent', ['hi'], { entrypoint: '/bin/echo' });
    expect(c.spec.entrypoint).toEqual(['/bin/echo']);
    expect(c.spec.command).toEqual(['hi']);
    expect(configFromFlags('stratoswarm/base-agent', [], { entrypoint: '' }).spec.entrypoint).toEqual([]);
  });

  it('takes --gpus counts and all', () => {
    expect(configFromFlags(IMAGE, [], { gpus: '2' }).spec.resources.gpuCount).toBe(2);
    expect(configFromFlags(IMAGE, [], { gpus: 'all' }, { hostGpus: [0, 1, 2] }).spec.resources.gpuDevices).toEqual([0, 1, 2]);
    expect(() => configFromFlags(IMAGE, [], { gpus: 'all' }, { hostGpus: [] })).toThrow('--gpus all: this host has no GPUs');
    expect(configFromFlags(IMAGE, [], { gpus: 'mig=2:1g.10gb' }).spec.resources.gpuMig).toEqual({ count: 2, profile: '1g.10gb' });
  });

  it('reports bad flags before anything is made', () => {
    expect(() => configFromFlags(IMAGE, [], { cpus: 'two' })).toThrow(UsageError);
    expect(() => configFromFlags(IMAGE, [], { personality: 'grumpy' })).toThrow(/--personality: expected one of conservative, aggressive/);
    expect(() => configFromFlags(IMAGE, [], { network: 'overlay' })).toThrow(/--network/);
    // What the library validates comes back as its ConfigError, naming the field.
    expect(() => configFromFlags(IMAGE, [], { memory: '1k' })).toThrow(ConfigError);
    expect(() => configFromFlags(IMAGE, [], { volume: ['/x:relative'] })).toThrow(/volumes\[0\]\.target/);
  });

  it('parses -e and -v as docker does', () => {
    expect(parseEnv(['A=', 'UNSET'], {})).toEqual({ A: '' });
    expect(() => parseEnv(['=x'])).toThrow(/-e: expected NAME=VALUE/);
    expect(parseVolume('data:/d', '/home/me')).toEqual({ source: '/home/me/data', target: '/d', readOnly: false });
    expect(parseVolume('/a:/b:ro')).toEqual({ source: '/a', target: '/b', readOnly: true });
    expect(() => parseVolume('/a')).toThrow(/-v: expected SOURCE:TARGET/);
    expect(() => parseVolume('/a:/b:rx')).toThrow(/option "rx" in "\/a:\/b:rx" is not one of ro, rw, idmap, noidmap/);
    expect(parseVolume('/a:/b:ro,noidmap')).toEqual({ source: '/a', target: '/b', readOnly: true, idmap: false });
    expect(parseVolume('/a:/b:idmap')).toEqual({ source: '/a', target: '/b', readOnly: false });
    expect(() => parseVolume('/a:/b:ro,rw')).toThrow(/both ro and rw/);
    expect(() => parseVolume('/a:/b:idmap,noidmap')).toThrow(/both idmap and noidmap/);
    const c = configFromFlags(IMAGE, ['sh'], { tty: true, init: true, volume: ['/a:/b:noidmap'] });
    expect(c.spec.terminal).toBe(true);
    expect(c.spec.init).toBe(true);
    expect(c.spec.volumes).toEqual([{ source: '/a', target: '/b', readOnly: false, idmap: false }]);
    expect(configFromFlags(IMAGE, ['sh'], {}).spec.terminal).toBe(false);
  });

  it('--restart maps docker\'s policies onto the restart policy; a bad one names the flag', () => {
    expect(configFromFlags(IMAGE, [], {}).spec.restart).toBeUndefined();
    for (const policy of ['no', 'on-failure', 'always', 'unless-stopped'] as const) {
      expect(configFromFlags(IMAGE, [], { restart: policy }).spec.restart).toEqual({ policy });
    }
    expect(configFromFlags(IMAGE, [], { restart: 'on-failure:5' }).spec.restart).toEqual({ policy: 'on-failure', maxRetries: 5 });
    expect(parseRestart(' always ')).toEqual({ policy: 'always' });
    expect(() => parseRestart('sometimes')).toThrow(UsageError);
    expect(() => parseRestart('sometimes')).toThrow('--restart: expected no, on-failure[:N], always or unless-stopped, got "sometimes"');
    expect(() => parseRestart('always:3')).toThrow('--restart: only on-failure takes a retry count (:N), got "always:3"');
    for (const n of ['0', '-1', 'x', '1.5', '']) expect(() => parseRestart(`on-failure:${n}`)).toThrow(/--restart: on-failure:N needs a whole number/);
  });

  it('translates update flags', () => {
    expect(updateFromFlags({ cpus: '0.5', memory: '1g', pidsLimit: '10', cpusetCpus: '0' })).toEqual({ cpuLimit: 0.5, memoryLimit: 1024 ** 3, pidsLimit: 10, cpusetCpus: '0' });
    expect(() => updateFromFlags({})).toThrow(/nothing to change/);
  });
});

describe('exit codes and error lines', () => {
  const step = (s: RuntimeError['step'], errno?: string) => new RuntimeError('create container a: step resolve-exec `/x`: ' + errno, { code: 'ESPAWN', step: s, errno });

  it('maps a command that cannot be found or run to 127 and 126, anything else to 125', () => {
    expect(exitCodeFor(step('resolve-exec', 'ENOENT'))).toBe(127);
    expect(exitCodeFor(step('resolve-exec', 'EACCES'))).toBe(126);
    expect(exitCodeFor(step('resolve-exec', 'ELOOP'))).toBe(125);
    expect(exitCodeFor(step('mount', 'ENOENT'))).toBe(125);
    expect(exitCodeFor(new ConfigError('invalid container configuration', [{ field: 'name', problem: 'is required' }]))).toBe(125);
    expect(exitCodeFor(new UsageError('bad'))).toBe(125);
    expect(exitCodeFor(new Error('anything'))).toBe(125);
    expect(exitCodeFor(new SilentExit(3))).toBe(3);
  });

  it('gives a process exit code, or 128 + the signal', () => {
    expect(processExitCode(0, undefined)).toBe(0);
    expect(processExitCode(3, undefined)).toBe(3);
    expect(processExitCode(null, 9)).toBe(137);
    expect(processExitCode(null, undefined)).toBe(125);
  });

  it('prints every error on one line, prefixed with the verb', () => {
    expect(errorLine('run', step('resolve-exec', 'ENOENT'))).toBe('stratoswarm: run: create container a: step resolve-exec `/x`: ENOENT');
    expect(errorLine('start', new RuntimeError('spawner executable not found; tried:\n  /a\n  /b\nbuild it'))).toBe('stratoswarm: start: spawner executable not found; tried: /a; /b; build it');
    expect(errorLine('', 'odd')).toBe('stratoswarm: odd');
  });
});
