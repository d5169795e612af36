/** `stratoswarm topology`: CPUs, NUMA nodes and GPUs of this host. */
import type { Command } from 'commander';
import { action } from '../context.js';
import { json, print, table, withFormat, type OutputFormat } from '../format.js';
import { cpuRanges } from '../topology.js';
import { formatBytes } from '../units.js';

export function registerTopology(program: Command): void {
  withFormat(program.command('topology').description('CPUs, NUMA nodes and GPUs of this host')).action(
    action(async (ctx, flags: { format?: OutputFormat }) => {
      const inv = await ctx.runtime().gpus();
      const topo = await ctx.runtime().topology();
      const gpus = topo.gpus.map((g) => ({ ...g, name: inv.devices.find((d) => d.index === g.index)?.name }));
      if (flags.format === 'json') return print(json({ ...topo, gpus }));
      const nodes = table(
        ['NODE', 'CPUS', 'COUNT', 'MEMORY', 'DISTANCES', 'GPUS'],
        topo.nodes.map((n) => [n.id, cpuRanges(n.cpus), n.cpus.length, formatBytes(n.memoryBytes), n.distances ? Object.values(n.distances).join(' ') : '-', gpus.filter((g) => g.numaNode === n.id).map((g) => g.index).join(',') || '-']),
      );
      const lines = [`CPU: ${topo.model ?? 'unknown'}, ${topo.online.length} online (${cpuRanges(topo.online)})`, `NUMA nodes: ${topo.nodes.length}`, '', nodes];
      if (gpus.length) {
        lines.push('', table(['GPU', 'NAME', 'PCI', 'NUMA NODE'], gpus.map((g) => [g.index, g.name ?? '-', g.pciBusId ?? '-', g.numaNode ?? '-'])));
      } else lines.push('', `GPUs: none (${inv.source === 'nvml' ? 'NVML' : '/dev'})`);
      print(lines.join('\n'));
    }),
  );
}
