/** `stratoswarm topology`: CPUs, NUMA nodes and GPUs of this host. */
import type { Command } from 'commander';
import { action } from '../context.js';
import { json, print, table, withFormat, type OutputFormat } from '../format.js';
import { cpuRanges, pciNumaNode, readTopology } from '../topology.js';
import { formatBytes } from '../units.js';

export function registerTopology(program: Command): void {
  withFormat(program.command('topology').description('CPUs, NUMA nodes and GPUs of this host')).action(
    action(async (ctx, flags: { format?: OutputFormat }) => {
      const topo = readTopology();
      const inv = await ctx.runtime().gpus();
      const gpus = inv.devices.map((d) => ({ index: d.index, name: d.name, pciBusId: d.pciBusId, numaNode: pciNumaNode(d.pciBusId) }));
      if (flags.format === 'json') return print(json({ ...topo, gpus }));
      const nodes = table(
        ['NODE', 'CPUS', 'COUNT', 'MEMORY', 'GPUS'],
        topo.nodes.map((n) => [n.id, cpuRanges(n.cpus), n.cpus.length, formatBytes(n.memoryBytes), gpus.filter((g) => g.numaNode === n.id).map((g) => g.index).join(',') || '-']),
      );
      const lines = [`CPU: ${topo.model ?? 'unknown'}, ${topo.online.length} online (${cpuRanges(topo.online)})`, `NUMA nodes: ${topo.nodes.length}`, '', nodes];
      if (gpus.length) {
        lines.push('', table(['GPU', 'NAME', 'PCI', 'NUMA NODE'], gpus.map((g) => [g.index, g.name ?? '-', g.pciBusId ?? '-', g.numaNode ?? '-'])));
      } else lines.push('', `GPUs: none (${inv.source === 'nvml' ? 'NVML' : '/dev'})`);
      print(lines.join('\n'));
    }),
  );
}
