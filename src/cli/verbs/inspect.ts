/** `stratoswarm inspect`: one or more containers in detail. */
import type { Command } from 'commander';
import { action, findContainer } from '../context.js';
import { describe, quoteCommand, statusText } from '../describe.js';
import { json, keyValues, print, withFormat, type OutputFormat } from '../format.js';
import { formatBytes } from '../units.js';
import type { ContainerStatus, ResourceSpec } from '../../index.js';

export function registerInspect(program: Command): void {
  withFormat(program.command('inspect').description('show containers in detail').argument('<container...>', 'names or ids')).action(
    action(async (ctx, refs: string[], flags: { format?: OutputFormat }) => {
      const runtime = ctx.runtime();
      const all = [];
      for (const ref of refs) all.push(await describe(await findContainer(runtime, ref), runtime));
      if (flags.format === 'json') return print(json(all));
      print(all.map(render).join('\n\n'));
    }),
  );
}

function render(d: Record<string, unknown>): string {
  const s = d.status as ContainerStatus;
  const r = d.resources as ResourceSpec;
  const net = d.network as { mode: string; ip?: string };
  const limits = [
    r.cpuLimit !== undefined ? `cpus=${r.cpuLimit}` : '',
    r.memoryLimit !== undefined ? `memory=${formatBytes(r.memoryLimit)}` : '',
    r.pidsLimit !== undefined ? `pids=${r.pidsLimit}` : '',
    r.cpusetCpus !== undefined ? `cpuset=${r.cpusetCpus}` : '',
    r.gpuDevices?.length ? `gpus=${r.gpuDevices.join(',')}` : r.gpuCount ? `gpus=${r.gpuCount}` : '',
  ].filter(Boolean);
  return keyValues([
    ['ID', String(d.id)],
    ['Name', String(d.name)],
    ['Image', String(d.image)],
    ['Command', quoteCommand(d.command as string[], 200)],
    ['State', s.state],
    ['Status', statusText(s)],
    ['Pid', s.pid ?? '-'],
    ['Exit code', s.exitCode ?? (s.signal ? `signal ${s.signal}` : '-')],
    ['Created', s.createdAt.toISOString()],
    ['Started', s.startedAt?.toISOString() ?? '-'],
    ['Finished', s.finishedAt?.toISOString() ?? '-'],
    ['Personality', String(d.personality)],
    ['Network', net.ip ? `${net.mode} (${net.ip})` : net.mode],
    ['Limits', limits.join(' ') || 'none'],
  ]);
}
