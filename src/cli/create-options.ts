/** The flags `run` and `create` share, declared once. */
import { Option, type Command } from 'commander';
import { Container, Personality, type Runtime } from '../index.js';
import { configFromFlags, type CreateFlags } from './translate.js';
import { parseGpus } from './units.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function withCreateOptions(cmd: Command): Command {
  return cmd
    .option('--name <name>', 'container name (default: a generated one)')
    .option('-e, --env <NAME=VALUE>', 'set an environment variable (NAME alone: take it from this environment); repeatable', collect)
    .option('-v, --volume <src:dst[:opts]>', 'bind-mount a host path; opts: ro or rw, noidmap (default idmap: host uid N is container uid N); repeatable', collect)
    .option('-l, --label <key=value>', 'set a label; repeatable', collect)
    .addOption(new Option('--personality <name>', 'resource personality').choices(Personality.presets.map((p) => p.name.toLowerCase())))
    .option('--cpus <n>', 'CPU limit in cores (fractional, e.g. 1.5)')
    .option('-m, --memory <size>', 'memory limit (512m, 1g; binary units)')
    .option('--pids-limit <n>', 'maximum number of processes')
    .option('--gpus <request>', 'GPUs: all, a count (2), device=0,1, or MIG instances: mig=2, mig=1g.10gb, mig=2:1g.10gb')
    .option('--gpu-share', 'share the GPUs with other containers that share (default: exclusive)')
    .option('--device <name>', 'a CDI device: vendor.com/class=name (nvidia.com/gpu=0); repeatable', collect)
    .option('--cpuset-cpus <list>', 'CPUs the container may run on (0-3,6)')
    .addOption(new Option('--network <mode>', 'network').choices(['none', 'host', 'bridge']).default('none'))
    .option('-u, --user <user>', 'uid, uid:gid, name or name:group (from the image\'s /etc/passwd)')
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-h, --hostname <name>', 'hostname inside the container')
    .option('--entrypoint <path>', "run this instead of the image's Entrypoint (the command becomes its arguments)")
    .option('--read-only', 'mount the root filesystem read-only')
    .option('--userns <mode>', 'private (default: a user namespace of its own) or host (none: needed to checkpoint it)')
    .option('-t, --tty', 'give the command a terminal (its output still goes to the log)')
    .option('--init', 'run a minimal init as pid 1 that forwards signals and reaps zombies')
    .option('--restart <policy>', 'restart policy when the command ends: no, on-failure[:N] (at most N retries), always or unless-stopped, as docker (default no)')
    .helpOption('--help', 'display help for command');
}

/** Creates (does not start) the container these flags describe. */
export async function createFromFlags(runtime: Runtime, image: string, command: string[], flags: CreateFlags): Promise<Container> {
  let hostGpus: number[] | undefined;
  if (flags.gpus !== undefined && 'all' in parseGpus(flags.gpus)) hostGpus = (await runtime.gpus()).devices.map((d) => d.index);
  const config = configFromFlags(image, command, flags, { env: process.env, cwd: process.cwd(), hostGpus });
  return Container.create(config, { runtime });
}
