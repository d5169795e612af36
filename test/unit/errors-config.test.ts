import { describe, expect, it } from 'vitest';
import { ConfigError, RuntimeError, fromNodeError, resolveOptions, DEFAULT_OPTIONS } from '../../src/index.js';

describe('error model', () => {
  it('RuntimeError carries code, step, errno, syscall and path, and wraps context', () => {
    const e = new RuntimeError('write `cpu.max`: EINVAL (value "150000 100000")', {
      code: 'ESYSCALL',
      step: 'cgroup',
      errno: 'EINVAL',
      syscall: 'write',
      path: '/sys/fs/cgroup/x/cpu.max',
    });
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('RuntimeError');
    expect(e.wrap('update container a').message).toBe('update container a: write `cpu.max`: EINVAL (value "150000 100000")');
    expect(e.toJSON()).toMatchObject({ code: 'ESYSCALL', step: 'cgroup', errno: 'EINVAL', syscall: 'write' });
  });

  it('turns Node system errors into RuntimeErrors', () => {
    const nodeErr = Object.assign(new Error('x'), { code: 'ENOENT', errno: -2, syscall: 'open', path: '/nope' });
    const e = fromNodeError(nodeErr, 'volume', 'volumes[0]: source `/nope`');
    expect(e).toMatchObject({ code: 'ENOTFOUND', step: 'volume', errno: 'ENOENT', errnoNumber: 2, syscall: 'open', path: '/nope' });
    expect(e.message).toBe('volumes[0]: source `/nope`: ENOENT');
  });

  it('ConfigError lists every field', () => {
    const e = new ConfigError('invalid', [
      { field: 'a', problem: 'bad' },
      { field: 'b', problem: 'worse' },
    ]);
    expect(e.fields()).toEqual(['a', 'b']);
    expect(e.message).toBe('invalid: a: bad; b: worse');
  });
});

describe('environment configuration', () => {
  it('defaults with an empty environment', () => {
    expect(resolveOptions({}, {})).toEqual(DEFAULT_OPTIONS);
  });

  it('reads every variable', () => {
    const o = resolveOptions(
      {},
      {
        STRATOSWARM_RUNTIME_ENGINE: 'nvidia-docker',
        STRATOSWARM_REGISTRY: 'registry.example.org:5000/agents',
        STRATOSWARM_EVOLUTION_ENABLED: 'true',
        STRATOSWARM_EVOLUTION_RATE: '0.25',
        STRATOSWARM_STATE_ROOT: '/run/x',
        STRATOSWARM_IMAGE_ROOT: '/var/lib/x',
        STRATOSWARM_CGROUP_PARENT: 'agents/x',
        STRATOSWARM_LOG_LEVEL: 'debug',
        STRATOSWARM_POOL: 'stratoswarm/base-agent:latest=4, agents/x:1=0',
        STRATOSWARM_INSECURE_REGISTRIES: '127.0.0.1:5000, registry.lan',
        STRATOSWARM_REGISTRY_AUTH_FILE: '/etc/stratoswarm/auth.json',
      },
    );
    expect(o).toEqual({
      engine: 'nvidia',
      registry: 'registry.example.org:5000/agents',
      evolutionEnabled: true,
      evolutionRate: 0.25,
      stateRoot: '/run/x',
      imageRoot: '/var/lib/x',
      cgroupParent: 'agents/x',
      logLevel: 'debug',
      pool: [
        { image: 'stratoswarm/base-agent:latest', size: 4 },
        { image: 'agents/x:1', size: 0 },
      ],
      insecureRegistries: ['127.0.0.1:5000', 'registry.lan'],
      registryAuthFile: '/etc/stratoswarm/auth.json',
    });
    expect(() => resolveOptions({}, { STRATOSWARM_POOL: 'img=lots' })).toThrow(/STRATOSWARM_POOL: "img=lots": expected image=N/);
    expect(() => resolveOptions({}, { STRATOSWARM_INSECURE_REGISTRIES: 'http://x' })).toThrow(/STRATOSWARM_INSECURE_REGISTRIES: expected a list of host\[:port\]/);
    expect(() => resolveOptions({}, { STRATOSWARM_REGISTRY_AUTH_FILE: 'auth.json' })).toThrow(/STRATOSWARM_REGISTRY_AUTH_FILE: expected an absolute path/);
  });

  it('explicit options override the environment', () => {
    const o = resolveOptions({ evolutionRate: 0.5, stateRoot: '/tmp/s' }, { STRATOSWARM_EVOLUTION_RATE: '0.2', STRATOSWARM_STATE_ROOT: '/run/y' });
    expect(o.evolutionRate).toBe(0.5);
    expect(o.stateRoot).toBe('/tmp/s');
  });

  it('reports every invalid value at once, naming the variable', () => {
    let err: unknown;
    try {
      resolveOptions(
        {},
        {
          STRATOSWARM_RUNTIME_ENGINE: 'docker',
          STRATOSWARM_REGISTRY: 'not a registry',
          STRATOSWARM_EVOLUTION_ENABLED: 'maybe',
          STRATOSWARM_EVOLUTION_RATE: '2',
          STRATOSWARM_STATE_ROOT: 'relative/path',
          STRATOSWARM_CGROUP_PARENT: '../escape',
          STRATOSWARM_LOG_LEVEL: 'loud',
        },
      );
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).fields().sort()).toEqual(
      [
        'STRATOSWARM_CGROUP_PARENT',
        'STRATOSWARM_EVOLUTION_ENABLED',
        'STRATOSWARM_EVOLUTION_RATE',
        'STRATOSWARM_LOG_LEVEL',
        'STRATOSWARM_REGISTRY',
        'STRATOSWARM_RUNTIME_ENGINE',
        'STRATOSWARM_STATE_ROOT',
      ].sort(),
    );
    expect((err as Error).message).toMatch(/STRATOSWARM_EVOLUTION_RATE: expected a number in \(0, 1\], got 2/);
  });

  it('names the option when an explicit value is invalid', () => {
    expect(() => resolveOptions({ evolutionRate: -1 }, {})).toThrow(/options\.evolutionRate/);
  });
});
