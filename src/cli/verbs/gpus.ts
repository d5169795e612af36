/** `stratoswarm gpus`: the host's GPUs (NVML when its library loads, else /dev). */
import type { Command } from 'commander';
import { action } from '../context.js';
import { json, print, table, withFormat, type OutputFormat } from '../format.js';
import { formatBytes } from '../units.js';

export function registerGpus(program: Command): void {
  withFormat(program.command('gpus').description("list the host's GPUs")).action(
    action(async (ctx, flags: { format?: OutputFormat }) => {
      const inv = await ctx.runtime().gpus();
      if (flags.format === 'json') return print(json(inv));
      const source = inv.source === 'nvml' ? `NVML, driver ${inv.driverVersion ?? '?'}` : `/dev only (${inv.nvmlError ?? 'NVML not loaded'})`;
      if (inv.devices.length === 0) return print(`no GPUs (source: ${source})`);
      const pct = (n: number | undefined) => (n === undefined || n < 0 ? '-' : `${n}%`);
      print(
        `${table(
          ['INDEX', 'DEVICE', 'NAME', 'UUID', 'MEMORY USED / TOTAL', 'GPU UTIL', 'MEM UTIL', 'HELD BY'],
          inv.devices.map((d) => [
            d.index,
            `/dev/nvidia${d.minor}`,
            d.name ?? '-',
            d.uuid ?? '-',
            d.memoryTotal !== undefined ? `${formatBytes(d.memoryUsed)} / ${formatBytes(d.memoryTotal)}` : '-',
            pct(d.gpuUtilization),
            pct(d.memoryUtilization),
            inv.assignments.filter((a) => a.gpus.includes(d.index)).map((a) => `${a.name}${a.shared ? ' (shared)' : ''}`).join(', ') || '-',
          ]),
        )}\nsource: ${source}`,
      );
    }),
  );
}
