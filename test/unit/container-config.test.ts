import { describe, expect, it } from 'vitest';
import { ConfigError, ContainerConfig, HardwareAffinity, Personality } from '../../src/index.js';
import { validSettingsBox } from '../../src/container/resources.js';

const MiB = 1024 * 1024;

const base = () =>
  ContainerConfig.builder()
    .name('agent')
    .image('test/agent:1')
    .env({ A: '1' })
    .volume({ source: '/tmp', target: '/data' })
    .label('team', 'a')
    .memoryLimit(256 * MiB)
    .security({ noNewPrivileges: true, capabilities: { drop: ['NET_RAW'] } });

describe('validSettingsBox: evolution validates its bounds once, at the corners', () => {
  it('true when every corner is a valid configuration; false when one is not, or there are too many genes', () => {
    const config = base().memorySwap(512 * MiB).cpuLimit(1).build();
    const ctx = { config, rec: { resources: undefined } } as never;
    expect(validSettingsBox(ctx, [{ name: 'memoryLimit', min: 64 * MiB, max: 512 * MiB }, { name: 'cpuLimit', min: 0.1, max: 2 }])).toBe(true);
    // 1 GiB of memory is more than the 512 MiB of memory+swap: the update would be refused.
    expect(validSettingsBox(ctx, [{ name: 'memoryLimit', min: 64 * MiB, max: 1024 * MiB }])).toBe(false);
    expect(validSettingsBox(ctx, [{ name: 'cpuWeight', min: 1, max: 20000 }])).toBe(false);
    const five = ['cpuLimit', 'cpuWeight', 'memoryLimit', 'pidsLimit', 'memoryReservation'].map((name) => ({ name, min: 1, max: 2 }));
    expect(validSettingsBox(ctx, five)).toBe(false);
  });
});

describe('ContainerConfigBuilder.build(): an independent, frozen spec', () => {
  it('autoscale: unset (on while evolving), false (off even then), or options; the options name a bad field', () => {
    expect(base().build().spec.autoscale).toBeUndefined();
    expect(base().autoscale(false).build().spec.autoscale).toBe(false);
    expect(base().autoscale().build().spec.autoscale).toEqual({});
    expect(base().autoscale({ intervalMs: 200 }).build().spec.autoscale).toEqual({ intervalMs: 200 });
    // Survives the round trip a record makes.
    const off = base().autoscale(false).build();
    expect(ContainerConfig.fromSpec(off.toJSON() as never).spec.autoscale).toBe(false);
    expect(() => base().autoscale({ intervalMs: 1 }).build()).toThrow(/autoscale\.intervalMs/);
  });

  it('a builder used again leaves the configs it built unchanged', () => {
    const b = base();
    const first = b.build();
    b.env({ B: '2' }).volume({ source: '/var', target: '/logs' }).label('team', 'b').memoryLimit(512 * MiB).gpuDevices([0]);
    const second = b.build();
    expect(first.spec.env).toEqual({ A: '1' });
    expect(first.spec.volumes).toEqual([{ source: '/tmp', target: '/data' }]);
    expect(first.spec.labels).toEqual({ team: 'a' });
    expect(first.spec.resources).toEqual({ memoryLimit: 256 * MiB });
    expect(second.spec.env).toEqual({ A: '1', B: '2' });
    expect(second.spec.volumes).toHaveLength(2);
    expect(second.spec.resources).toEqual({ memoryLimit: 512 * MiB, gpuDevices: [0] });
  });

  it('security options given as an object are copied, not kept by reference', () => {
    const options = { noNewPrivileges: true, capabilities: { drop: ['NET_RAW'] } };
    const c = base().security(options).build();
    options.noNewPrivileges = false;
    options.capabilities.drop.push('CHOWN');
    expect(c.spec.security).toEqual({ noNewPrivileges: true, capabilities: { drop: ['NET_RAW'] } });
  });

  it('the spec is frozen to the leaves', () => {
    const c = base().command(['/bin/agent', '--x']).build();
    expect(Object.isFrozen(c.spec)).toBe(true);
    for (const part of [c.spec.env, c.spec.volumes, c.spec.volumes[0], c.spec.labels, c.spec.resources, c.spec.args, c.spec.command, c.spec.security]) {
      expect(Object.isFrozen(part)).toBe(true);
    }
    expect(() => {
      (c.spec.env as Record<string, string>).X = '1';
    }).toThrow(TypeError);
    expect(c.spec.env).toEqual({ A: '1' });
  });

  it('toJSON() gives a copy: changing it changes nothing in the config', () => {
    const c = base().build();
    const json = c.toJSON() as { env: Record<string, string>; resources: Record<string, number> };
    json.env.Z = '9';
    json.resources.memoryLimit = 1;
    expect(c.spec.env).toEqual({ A: '1' });
    expect(c.spec.resources).toEqual({ memoryLimit: 256 * MiB });
  });
});

describe('ContainerConfig.clone()', () => {
  it('is an independent copy with the same spec and affinity', () => {
    const affinity = HardwareAffinity.builder().cpuCores([2, 3]).build();
    const config = base().personality(Personality.Explorer).hardwareAffinity(affinity).build();
    const copy = config.clone();
    expect(copy).not.toBe(config);
    expect(copy.spec).toEqual(config.spec);
    expect(copy.spec.personality).toBe(Personality.Explorer);
    expect(copy.hardwareAffinity()).toBe(affinity);
    expect(copy.toJSON()).toEqual(config.toJSON());
  });

  it("setHardwareAffinity on the user's config leaves a clone (a created container's) alone", () => {
    const config = base().build();
    const copy = config.clone();
    const pinned = HardwareAffinity.builder().cpuCores([0]).build();
    config.setHardwareAffinity(pinned);
    expect(config.hardwareAffinity()).toBe(pinned);
    expect(copy.hardwareAffinity()).toBeUndefined();
    expect((copy.toJSON() as { hardwareAffinity?: unknown }).hardwareAffinity).toBeUndefined();
  });
});

describe('HardwareAffinity: NUMA CPUs come from the caller', () => {
  it('asks the lookup for a NUMA-only affinity, and never reads sysfs itself', () => {
    const asked: number[] = [];
    const lookup = (node: number) => {
      asked.push(node);
      return node === 1 ? [4, 5, 6, 9] : [];
    };
    const a = HardwareAffinity.builder().numaNode(1).build();
    expect(a.cpus(lookup)).toEqual([4, 5, 6, 9]);
    expect(a.cpuset(lookup)).toEqual({ cpus: '4,5,6,9', mems: undefined });
    expect(asked).toEqual([1, 1]);
  });

  it('without a lookup, a NUMA-only affinity throws a ConfigError naming numaNode', () => {
    const a = HardwareAffinity.builder().numaNode(0).build();
    expect(() => a.cpus()).toThrow(ConfigError);
    expect(() => a.cpuset()).toThrow(/NUMA node 0.*no node CPU lookup/);
    try {
      a.cpus();
    } catch (e) {
      expect((e as ConfigError).fields()).toEqual(['numaNode']);
    }
  });

  it('CPUs given explicitly win over the node: no lookup needed', () => {
    const a = HardwareAffinity.builder().cpuCores([3, 1]).numaNode(0).build();
    expect(a.cpus()).toEqual([1, 3]);
    expect(a.memoryPolicy()).toEqual({ mode: 1, nodes: [0] });
  });

  it('the affinity keeps its own CPU list, and round-trips through fromSpec/toJSON', () => {
    const cores = [1, 2];
    const b = HardwareAffinity.builder().cpuCores(cores).numaNode(0).preferLocalMemory(false);
    const a = b.build();
    b.cpuCores([7]);
    cores.push(9);
    expect(a.spec.cpuCores).toEqual([1, 2]);
    expect(Object.isFrozen(a.spec.cpuCores)).toBe(true);
    const config = base().hardwareAffinity(a).build();
    const json = JSON.parse(JSON.stringify(config.toJSON())) as Record<string, unknown> & { hardwareAffinity: never };
    const back = ContainerConfig.fromSpec(json as never, json.hardwareAffinity);
    expect(back.hardwareAffinity()?.spec).toEqual({ cpuCores: [1, 2], numaNode: 0, preferLocalMemory: false });
    expect(back.toJSON()).toEqual(JSON.parse(JSON.stringify(config.toJSON())));
  });
});

describe('gpuMig', () => {
  it('a count and an optional profile; a bad one is an error naming the field', () => {
    expect(base().gpuMig({ count: 2, profile: '1g.10gb' }).build().spec.resources.gpuMig).toEqual({ count: 2, profile: '1g.10gb' });
    const e = (() => {
      try {
        base().gpuMig({ count: 0, profile: '10 GB' }).build();
      } catch (err) {
        return err as ConfigError;
      }
    })();
    expect(e).toBeInstanceOf(ConfigError);
    expect(e!.message).toMatch(/gpuMig\.count: [\s\S]*gpuMig\.profile: expected a MIG profile like "1g\.10gb", got "10 GB"/);
  });
});
