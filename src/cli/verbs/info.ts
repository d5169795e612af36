/** `stratoswarm info`: how this host and runtime are set up. */
import type { Command } from 'commander';
import * as fs from 'node:fs';
import { release } from 'node:os';
import { Container, detectCgroups, type CgroupLayout } from '../../index.js';
import { action } from '../context.js';
import { json, keyValues, print, withFormat, type OutputFormat } from '../format.js';
import { spawnerBinary, VERSION } from '../version-info.js';

/** The cgroup layout this process sees, as the runtime's driver works it out. */
export function cgroupLayout(): CgroupLayout {
  const text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  const probe = detectCgroups(text);
  if (!probe.v2) return probe;
  try {
    const v2Controllers = fs.readFileSync(`${probe.v2.mount}/cgroup.controllers`, 'utf8').trim().split(/\s+/).filter(Boolean);
    return detectCgroups(text, { v2Controllers });
  } catch {
    return probe;
  }
}

function layoutKind(l: CgroupLayout): string {
  const versions = new Set(Object.values(l.controllers).map((b) => b.version));
  if (versions.size === 2 || (versions.has(1) && l.v2)) return 'hybrid (v1 controllers and a v2 tree)';
  return versions.has(2) ? 'v2 (unified)' : 'v1';
}

export function registerInfo(program: Command): void {
  withFormat(program.command('info').description('runtime and host configuration')).action(
    action(async (ctx, flags: { format?: OutputFormat }) => {
      const runtime = ctx.runtime();
      const o = runtime.options;
      const layout = cgroupLayout();
      const statuses = await Container.list({ runtime }).catch(() => []);
      const count = (s: string) => statuses.filter((x) => x.state === s).length;
      const info = {
        version: VERSION,
        kernel: release(),
        engine: o.engine,
        registry: o.registry,
        stateRoot: o.stateRoot,
        imageRoot: o.imageRoot,
        cgroupParent: o.cgroupParent,
        cgroups: { kind: layoutKind(layout), ...layout },
        spawner: spawnerBinary(),
        evolution: { enabled: o.evolutionEnabled, rate: o.evolutionRate },
        containers: { total: statuses.length, running: count('running'), paused: count('paused'), stopped: count('stopped'), created: count('created') },
        images: runtime.images.list().length,
      };
      if (flags.format === 'json') return print(json(info));
      const bound = Object.entries(layout.controllers).map(([c, b]) => `${c}(v${b.version})`).join(' ');
      print(
        keyValues([
          ['Version', info.version],
          ['Kernel', info.kernel],
          ['Engine', info.engine],
          ['Registry', info.registry],
          ['State root', info.stateRoot],
          ['Image root', info.imageRoot],
          ['Cgroups', info.cgroups.kind],
          ['Cgroup parent', info.cgroupParent],
          ['Controllers', bound],
          ['Spawner', info.spawner.path ?? `not found (tried ${info.spawner.tried.join(', ')})`],
          ['Evolution', info.evolution.enabled ? `enabled, rate ${info.evolution.rate}` : `disabled (rate ${info.evolution.rate})`],
          ['Containers', `${info.containers.total} (${info.containers.running} running, ${info.containers.paused} paused, ${info.containers.stopped} stopped, ${info.containers.created} created)`],
          ['Images', info.images],
        ]),
      );
    }),
  );
}
