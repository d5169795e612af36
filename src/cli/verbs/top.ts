/** `stratoswarm top`: the processes of a container, from its cgroup. */
import type { Command } from 'commander';
import { RuntimeError } from '../../index.js';
import { action, findContainer } from '../context.js';
import { output, table, withFormat, type OutputFormat } from '../format.js';
import { cgroupPids, cpuTime, processInfo, type ProcessInfo } from '../procs.js';

export function registerTop(program: Command): void {
  withFormat(program.command('top').description('list the processes of a running container (host pids)').argument('<container>', 'name or id')).action(
    action(async (ctx, ref: string, flags: { format?: OutputFormat }) => {
      const c = await findContainer(ctx.runtime(), ref);
      if (c.state !== 'running' && c.state !== 'paused') {
        throw new RuntimeError(`container ${c.name} is ${c.state}, not running`, { code: 'ESTATE', step: 'state' });
      }
      const procs = cgroupPids(c.record().cgroupProcs)
        .map((pid) => processInfo(pid))
        .filter((p): p is ProcessInfo => p !== undefined);
      output(flags.format, procs, (ps) =>
        table(
          ['UID', 'PID', 'PPID', 'STIME', 'TIME', 'CMD'],
          ps.map((p) => [p.uid, p.pid, p.ppid, new Date(p.startedAt).toTimeString().slice(0, 5), cpuTime(p.cpuSeconds), p.command]),
        ),
      );
    }),
  );
}
