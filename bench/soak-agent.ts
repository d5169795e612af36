/**
 * The host agent of the soak benchmark (bench/soak.bench.ts): mixed work on a few containers
 * until it is killed. Each finished operation is one line on stdout: `<op> <ms>` or
 * `<op> error <message>`.
 *
 *   node dist/bench/soak-agent.js <stateRoot> <imageRoot> <cgroupParent> <seed>
 */
import { pino } from 'pino';
import { Container, ContainerConfig, Runtime } from '../src/index.js';

const [stateRoot, imageRoot, cgroupParent, seedText] = process.argv.slice(2) as [string, string, string, string];
const runtime = new Runtime({ stateRoot, imageRoot, cgroupParent, logger: pino({ level: 'silent' }), spawnerIdleMs: 60_000, env: {} });

// A small deterministic generator: a run can be repeated from its seed.
let seed = Number(seedText) >>> 0 || 1;
const random = () => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 2 ** 32;
};

let n = 0;
const config = () =>
  ContainerConfig.builder()
    .name(`soak-${seedText}-${++n}`)
    .image('stratoswarm/base-agent:latest')
    .command(['sleep', '100000'])
    // The init passes stop's SIGTERM on: a stop is the runtime's work, not a wait for the command.
    .init(true)
    .memoryLimit(64 * 1024 * 1024)
    .build();

async function timed(op: string, f: () => Promise<unknown>): Promise<void> {
  const t0 = performance.now();
  try {
    await f();
    process.stdout.write(`${op} ${(performance.now() - t0).toFixed(3)}\n`);
  } catch (e) {
    process.stdout.write(`${op} error ${(e as Error).message.replace(/\n/g, ' ')}\n`);
  }
}

const live: Container[] = [];
for (;;) {
  const r = random();
  if (live.length < 2 || (r < 0.25 && live.length < 8)) {
    await timed('create+start', async () => {
      const c = await Container.create(config(), { runtime });
      live.push(c);
      await c.start();
    });
  } else {
    const c = live[Math.floor(random() * live.length)]!;
    if (r < 0.5) await timed('exec', () => c.exec(['true']));
    else if (r < 0.65) await timed('update', () => c.update({ pidsLimit: 32 + Math.floor(random() * 64) }));
    else if (r < 0.85) await timed('stats', () => c.stats());
    else {
      live.splice(live.indexOf(c), 1);
      await timed('stop+remove', async () => {
        await c.stop({ timeoutMs: 2000 });
        await c.remove();
      });
    }
  }
}
