/** `stratoswarm stats`: a live table of usage per container (--no-stream: one sample). */
import type { Command } from 'commander';
import { totalmem } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import { Container, type ContainerStats } from '../../index.js';
import { action, findContainer, type VerbContext } from '../context.js';
import { json, print, shortId, table, withFormat, type OutputFormat } from '../format.js';
import { formatBytes } from '../units.js';

interface StatsFlags {
  stream: boolean;
  format?: OutputFormat;
  interval: string;
}

interface Row {
  id: string;
  name: string;
  stats: ContainerStats;
}

export function registerStats(program: Command): void {
  withFormat(
    program
      .command('stats')
      .description('live resource usage of running containers (all, or those named)')
      .argument('[container...]', 'names or ids (default: every running container)')
      .option('--no-stream', 'print one sample and exit')
      .option('--interval <ms>', 'refresh period in milliseconds', '1000'),
  ).action(
    action(async (ctx, refs: string[], flags: StatsFlags) => {
      const containers = await pick(ctx, refs);
      const period = Math.max(100, Number(flags.interval) || 1000);
      // The CPU rate needs two samples: the first only sets the baseline.
      const sample = async () => {
        const rows: Row[] = [];
        for (const c of containers) {
          if (c.state !== 'running' && c.state !== 'paused') continue;
          try {
            rows.push({ id: c.id, name: c.name, stats: await c.stats() });
          } catch {
            // exited between samples
          }
        }
        return rows;
      };
      await sample();
      const stop = new AbortController();
      const interrupt = () => stop.abort();
      process.once('SIGINT', interrupt);
      try {
        for (;;) {
          await delay(flags.stream ? period : Math.min(period, 500), undefined, { signal: stop.signal });
          const rows = await sample();
          if (flags.format === 'json') print(flags.stream ? JSON.stringify(rows.map(plain)) : json(rows.map(plain)));
          else {
            if (flags.stream && process.stdout.isTTY) process.stdout.write('\x1b[2J\x1b[H');
            print(render(rows));
          }
          if (!flags.stream || rows.length === 0) return;
        }
      } catch (e) {
        if (!stop.signal.aborted) throw e;
      } finally {
        process.off('SIGINT', interrupt);
      }
    }),
  );
}

async function pick(ctx: VerbContext, refs: string[]): Promise<Container[]> {
  const runtime = ctx.runtime();
  if (refs.length > 0) return Promise.all(refs.map((r) => findContainer(runtime, r)));
  const live = (await Container.list({ runtime })).filter((s) => s.state === 'running' || s.state === 'paused');
  const out: Container[] = [];
  for (const s of live) out.push(await Container.load(s.id, { runtime }).catch(() => undefined as never));
  return out.filter(Boolean);
}

function plain(r: Row): Record<string, unknown> {
  const s = r.stats;
  return {
    id: r.id,
    name: r.name,
    cpuPercent: s.cpuCores === undefined ? null : Number((s.cpuCores * 100).toFixed(2)),
    memoryBytes: s.memory?.currentBytes ?? null,
    memoryLimitBytes: s.memory && Number.isFinite(s.memory.limitBytes) ? s.memory.limitBytes : null,
    network: s.network ?? null,
    blockIo: s.blockIo ?? null,
    pids: s.pids?.current ?? null,
    timestamp: new Date(s.timestamp).toISOString(),
  };
}

function render(rows: Row[]): string {
  return table(
    ['CONTAINER ID', 'NAME', 'CPU %', 'MEM USAGE / LIMIT', 'MEM %', 'NET I/O', 'BLOCK I/O', 'PIDS'],
    rows.map(({ id, name, stats: s }) => {
      // Unlimited (or a limit above the host's memory) reads as the host's memory, as docker shows it.
      const limit = Math.min(s.memory?.limitBytes ?? Infinity, totalmem());
      const mem = s.memory ? `${formatBytes(s.memory.currentBytes)} / ${formatBytes(limit)}` : '--';
      const memPct = s.memory ? `${((s.memory.currentBytes / limit) * 100).toFixed(2)}%` : '--';
      const net = s.network ? `${formatBytes(s.network.rxBytes)} / ${formatBytes(s.network.txBytes)}` : '--';
      const blk = s.blockIo ? `${formatBytes(s.blockIo.readBytes)} / ${formatBytes(s.blockIo.writeBytes)}` : '--';
      const cpu = s.cpuCores === undefined ? '--' : `${(s.cpuCores * 100).toFixed(2)}%`;
      return [shortId(id), name, cpu, mem, memPct, net, blk, s.pids ? String(s.pids.current) : '--'];
    }),
  );
}
