/** How containers read in `ps` and `inspect`: docker's status phrases, command lines, records. */
import { processArgv } from '../image/config.js';
import { signalNumber, type Container, type ContainerStatus, type Runtime } from '../index.js';
import { humanDuration } from './units.js';

/** "Up 5 minutes", "Exited (3) 2 hours ago", "Created", "Up 1 second (Paused)". */
export function statusText(s: ContainerStatus, now = Date.now()): string {
  switch (s.state) {
    case 'running':
      return `Up ${humanDuration(now - (s.startedAt ?? s.createdAt).getTime())}`;
    case 'paused':
      return `Up ${humanDuration(now - (s.startedAt ?? s.createdAt).getTime())} (Paused)`;
    case 'stopped': {
      if (!s.startedAt && !s.finishedAt) return 'Exited';
      const code = s.exitCode ?? (s.signal ? 128 + signalNumber(s.signal) : '?');
      const ago = s.finishedAt ? ` ${humanDuration(now - s.finishedAt.getTime())} ago` : '';
      return `Exited (${code})${s.oomKilled ? ' OOMKilled' : ''}${ago}`;
    }
    case 'created':
      return 'Created';
    default:
      return s.state.charAt(0).toUpperCase() + s.state.slice(1);
  }
}

/** The argv a container runs: its own command, else its image's. */
export function commandOf(c: Container, runtime: Runtime): string[] {
  const spec = c.config.spec;
  try {
    return processArgv(runtime.images.resolve(spec.image).config, spec);
  } catch {
    return [...(spec.entrypoint ?? []), ...(spec.command ?? []), ...spec.args];
  }
}

/** A shell-like rendering of an argv, shortened for a table cell. */
export function quoteCommand(argv: string[], max = 30): string {
  const s = argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
  const q = `"${s}"`;
  return q.length > max ? `${q.slice(0, max - 2)}…"` : q;
}

/** What `inspect --format json` prints for one container. */
export async function describe(c: Container, runtime: Runtime): Promise<Record<string, unknown>> {
  const rec = c.record();
  return {
    id: c.id,
    name: c.name,
    image: c.config.spec.image,
    command: commandOf(c, runtime),
    status: await c.status(),
    personality: c.config.spec.personality.name,
    network: { mode: c.config.spec.network, ip: c.ip },
    resources: c.resources,
    config: c.config.toJSON(),
    paths: rec.paths,
    cgroupProcs: rec.cgroupProcs,
    evolution: c.evolutionState() ?? (rec.evolution ? 'persisted (see `stratoswarm evolution`)' : undefined),
  };
}
