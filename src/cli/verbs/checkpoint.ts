/**
 * `stratoswarm checkpoint`, `restore` and `migrate`: CRIU checkpoints of running containers,
 * as directories or single archives, and live migration to another state root.
 */
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { Container, exportCheckpoint, importCheckpoint, Runtime } from '../../index.js';
import { action, findContainer } from '../context.js';
import { UsageError } from '../errors.js';
import { keyValues, output, withFormat, type OutputFormat } from '../format.js';

export function registerCheckpoint(program: Command): void {
  withFormat(
    program
      .command('checkpoint')
      .description('dump a running container with CRIU (it ends, unless --leave-running)')
      .argument('<container>', 'name or id')
      .option('--path <dir>', 'the checkpoint directory to write (default: under the image root)')
      .option('--leave-running', 'keep the container running after the dump')
      .option('--pre-dump', 'pre-dump its memory first, so the freeze is shorter (where the kernel tracks dirty pages)')
      .option('--export <file>', 'also write the checkpoint as one archive (tar; .zst or --zstd: compressed)')
      .option('--zstd', 'compress the exported archive with zstd'),
  ).action(
    action(async (ctx, ref: string, flags: { path?: string; leaveRunning?: boolean; preDump?: boolean; export?: string; zstd?: boolean; format?: OutputFormat }) => {
      const c = await findContainer(ctx.runtime(), ref);
      const r = await c.checkpoint({ path: flags.path === undefined ? undefined : resolve(flags.path), leaveRunning: !!flags.leaveRunning, preDump: !!flags.preDump });
      let archive: { file: string; sha256: string } | undefined;
      if (flags.export !== undefined) {
        const file = resolve(flags.export);
        archive = { file, sha256: await exportCheckpoint(r.path, file, { zstd: !!flags.zstd || file.endsWith('.zst') }) };
      }
      output(flags.format, { ...r, ...(archive ? { archive } : {}) }, (d) =>
        keyValues([
          ['Checkpoint', d.path],
          ['Frozen', `${d.frozenMs.toFixed(1)} ms`],
          ['Size', `${(d.bytes / 2 ** 20).toFixed(1)} MiB`],
          ['Pre-dumps', d.preDumps],
          ...(archive ? ([['Archive', archive.file], ['SHA-256', archive.sha256]] as [string, string][]) : []),
        ]),
      );
    }),
  );

  withFormat(
    program
      .command('restore')
      .description('run a container again from a checkpoint directory or an exported archive')
      .argument('<checkpoint>', 'a checkpoint directory, or an archive made by checkpoint --export')
      .option('--name <name>', 'the restored container\'s name (default: the checkpointed one\'s)')
      .option('--sha256 <digest>', 'an archive\'s expected SHA-256 (checked before it is unpacked)'),
  ).action(
    action(async (ctx, from: string, flags: { name?: string; sha256?: string; format?: OutputFormat }) => {
      const runtime = ctx.runtime();
      const path = resolve(from);
      let dir = path;
      let unpacked: string | undefined;
      if ((await stat(path).catch(() => undefined))?.isFile()) {
        const base = join(runtime.options.imageRoot, 'checkpoints');
        await mkdir(base, { recursive: true });
        unpacked = join(await mkdtemp(join(base, '.import-')), 'checkpoint');
        dir = unpacked;
        await importCheckpoint(path, dir, { sha256: flags.sha256 });
      } else if (flags.sha256 !== undefined) {
        throw new UsageError('--sha256: only an archive has a digest to check; a directory is checked file by file');
      }
      try {
        const c = await Container.restore(dir, { runtime, name: flags.name });
        output(flags.format, { id: c.id, name: c.name }, (d) => d.name);
      } finally {
        if (unpacked) await rm(join(unpacked, '..'), { recursive: true, force: true });
      }
    }),
  );

  withFormat(
    program
      .command('migrate')
      .description('move a running container to another state root (another node\'s runtime) with CRIU')
      .argument('<container>', 'name or id')
      .requiredOption('--to-state-root <dir>', 'the target runtime\'s state root')
      .requiredOption('--to-image-root <dir>', 'the target runtime\'s image root (the image must be there)')
      .option('--to-cgroup-parent <name>', 'the target runtime\'s cgroup parent')
      .option('--name <name>', 'its name on the target (default: the same)')
      .option('--pre-dumps <n>', 'pre-dumps while it runs (default 2; none without dirty-page tracking)'),
  ).action(
    action(async (ctx, ref: string, flags: { toStateRoot: string; toImageRoot: string; toCgroupParent?: string; name?: string; preDumps?: string; format?: OutputFormat }) => {
      for (const [flag, v] of [['--to-state-root', flags.toStateRoot], ['--to-image-root', flags.toImageRoot]] as const) {
        if (!isAbsolute(v)) throw new UsageError(`${flag}: "${v}" is not an absolute path`);
      }
      const preDumps = flags.preDumps === undefined ? undefined : Number(flags.preDumps);
      if (preDumps !== undefined && (!Number.isInteger(preDumps) || preDumps < 0 || preDumps > 8)) throw new UsageError(`--pre-dumps: "${flags.preDumps}" is not a whole number from 0 to 8`);
      const target = new Runtime({ stateRoot: flags.toStateRoot, imageRoot: flags.toImageRoot, cgroupParent: flags.toCgroupParent, logLevel: 'error' });
      try {
        const c = await findContainer(ctx.runtime(), ref);
        const r = await c.migrate(target, { name: flags.name, preDumps });
        const data = { id: r.container.id, name: r.container.name, downtimeMs: r.downtimeMs, totalMs: r.totalMs, preDumps: r.preDumps, bytes: r.bytes };
        output(flags.format, data, (d) =>
          keyValues([
            ['Container', `${d.name} (${d.id})`],
            ['Downtime', `${d.downtimeMs.toFixed(1)} ms`],
            ['Total', `${d.totalMs.toFixed(1)} ms`],
            ['Pre-dumps', d.preDumps],
            ['Size', `${(d.bytes / 2 ** 20).toFixed(1)} MiB`],
          ]),
        );
      } finally {
        await target.close();
      }
    }),
  );
}
