/** `stratoswarm pull`: an image from a registry, with a progress bar per layer. */
import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import type { PullProgress } from '../../image/pull.js';
import { parsePlatform } from '../../image/media.js';
import { ConfigError } from '../../errors.js';
import { action } from '../context.js';
import { output, withFormat, type OutputFormat } from '../format.js';
import { formatBytes } from '../units.js';

const STATE_TEXT: Record<PullProgress['state'], string> = {
  waiting: 'Waiting',
  downloading: 'Downloading',
  unpacking: 'Extracting',
  done: 'Pull complete',
  exists: 'Already exists',
};

/** Bars on a terminal; one line per finished layer otherwise (logs, pipes). */
function progressView(quiet: boolean): { onProgress(p: PullProgress): void; stop(): void } {
  if (quiet) return { onProgress: () => undefined, stop: () => undefined };
  if (!process.stderr.isTTY) {
    const said = new Set<string>();
    return {
      onProgress(p) {
        if ((p.state === 'done' || p.state === 'exists') && !said.has(p.layer)) {
          said.add(p.layer);
          process.stderr.write(`${p.layer.slice(7, 19)}: ${STATE_TEXT[p.state]} (${formatBytes(p.total)})\n`);
        }
      },
      stop: () => undefined,
    };
  }
  const multi = new MultiBar(
    {
      stream: process.stderr,
      format: '{id}: {state} [{bar}] {done} / {size}',
      barsize: 30,
      hideCursor: true,
      clearOnComplete: false,
      autopadding: true,
      formatValue: (v, _o, type) => (type === 'value' || type === 'total' ? formatBytes(v) : String(v)),
    },
    Presets.shades_classic,
  );
  const bars = new Map<string, SingleBar>();
  return {
    onProgress(p) {
      let bar = bars.get(p.layer);
      const payload = { id: p.layer.slice(7, 19), state: STATE_TEXT[p.state].padEnd(14), done: formatBytes(p.done), size: formatBytes(p.total) };
      if (!bar) {
        bar = multi.create(Math.max(1, p.total), p.done, payload);
        bars.set(p.layer, bar);
      } else bar.update(p.done, payload);
    },
    stop: () => multi.stop(),
  };
}

export function registerPull(program: Command): void {
  withFormat(
    program
      .command('pull')
      .description('pull an image from a registry (HTTPS; HTTP to registries in STRATOSWARM_INSECURE_REGISTRIES)')
      .argument('<image>', 'reference: name[:tag], name@sha256:..., host:port/ns/name:tag')
      .option('--platform <os/arch>', 'the platform to choose from an image index (default: this host)')
      .option('-q, --quiet', 'no progress output')
      .option('--insecure', 'plain HTTP to this registry for this pull'),
  ).action(
    action(async (ctx, ref: string, flags: { platform?: string; quiet?: boolean; insecure?: boolean; format?: OutputFormat }) => {
      const platform = flags.platform !== undefined ? parsePlatform(flags.platform) : undefined;
      if (flags.platform !== undefined && !platform) throw new ConfigError('invalid flags', [{ field: '--platform', problem: `expected os/arch[/variant], got "${flags.platform}"` }]);
      const view = progressView(!!flags.quiet || flags.format === 'json');
      const started = Date.now();
      let result;
      try {
        result = await ctx.runtime().images.pull(ref, { platform, onProgress: (p) => view.onProgress(p), insecure: flags.insecure || undefined });
      } finally {
        view.stop();
      }
      const seconds = (Date.now() - started) / 1000;
      output(flags.format, { ...result, seconds }, (r) => `Digest: ${r.digest}\nStatus: pulled ${r.ref} in ${r.seconds.toFixed(1)} s`);
    }),
  );
}
