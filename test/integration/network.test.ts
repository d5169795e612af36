/**
 * Bridged networking through the CNI plugins, and bandwidth shaping measured between two
 * containers on the bridge (traffic never leaves this machine's own namespaces).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Container, ContainerConfig } from '../../src/index.js';
import type { Runtime } from '../../src/runtime.js';
import { IS_ROOT, SKIP_REASON, testRuntime, type TestRuntime } from '../helpers/runtime.js';

const HAVE_CNI = existsSync('/usr/lib/cni/bridge') || existsSync('/opt/cni/bin/bridge');
const SKIP = !IS_ROOT ? SKIP_REASON : !HAVE_CNI ? 'needs the CNI plugins (Debian: containernetworking-plugins)' : '';
if (SKIP) console.warn(`network tests skipped: ${SKIP}`);

function hostLinks(): string[] {
  return readdirSync('/sys/class/net').filter((l) => l.startsWith('veth')).sort();
}

let t: TestRuntime;
let rt: Runtime;
let n = 0;

async function bridged(script: string, mbps?: number): Promise<Container> {
  const b = ContainerConfig.builder().name(`net${++n}-${process.pid}`).image('stratoswarm/base-agent:latest').network('bridge').command(['/bin/sh', '-c', script]);
  if (mbps !== undefined) b.networkBandwidth(mbps);
  const c = await Container.create(b.build(), { runtime: rt });
  await c.start();
  return c;
}

describe.skipIf(!!SKIP)(`bridge network (root, CNI)${SKIP ? ` — skipped: ${SKIP}` : ''}`, () => { // reason printed above
  beforeAll(() => {
    t = testRuntime();
    rt = t.runtime;
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  it('gives each container an address on the bridge, loopback, and a path to the other', async () => {
    const a = await bridged('sleep 1000');
    const b = await bridged('sleep 1000');
    try {
      expect(a.ip).toMatch(/^10\.88\./);
      expect(b.ip).toMatch(/^10\.88\./);
      expect(a.ip).not.toBe(b.ip);
      const ifaces = await a.exec(['/bin/sh', '-c', 'ls /sys/class/net | sort | tr "\\n" " "; ip -4 -o addr show eth0 | awk "{print \\$4}"']);
      expect(ifaces.stdout).toContain('eth0 lo');
      expect(ifaces.stdout).toContain(`${a.ip}/16`);
      const server = a.exec(['/bin/sh', '-c', 'nc -l -p 7000 -e /bin/sh -c "cat > /tmp/got"; cat /tmp/got']);
      await new Promise((r) => setTimeout(r, 200));
      const client = await b.exec(['/bin/sh', '-c', `echo hello-over-bridge | nc ${a.ip} 7000`]);
      expect(client.exitCode).toBe(0);
      expect((await server).stdout).toBe('hello-over-bridge\n');
    } finally {
      await a.remove({ force: true });
      await b.remove({ force: true });
    }
  });

  async function measure(a: Container, b: Container, bytes: number): Promise<number> {
    // The server counts what arrives until the client closes (busybox nc would otherwise
    // hang up as soon as its own stdin ends).
    const server = a.exec(['/bin/sh', '-c', 'nc -l -p 7001 -e /bin/sh -c "wc -c > /tmp/count"; cat /tmp/count']);
    await new Promise((r) => setTimeout(r, 200));
    const t0 = performance.now();
    const sent = await b.exec(['/bin/sh', '-c', `dd if=/dev/zero bs=65536 count=${bytes / 65536} 2>/dev/null | nc ${a.ip} 7001`]);
    const received = await server;
    const seconds = (performance.now() - t0) / 1000;
    expect(sent.exitCode).toBe(0);
    expect(Number(received.stdout.trim())).toBe(bytes);
    return (bytes * 8) / seconds / 1e6;
  }

  it('holds a bandwidth limit within ±20 %, and a new limit set live with update()', async () => {
    const a = await bridged('sleep 1000', 40);
    const b = await bridged('sleep 1000', 40);
    try {
      const at40 = await measure(a, b, 64 * 1024 * 160); // 10 MiB: about 2 s at 40 Mbps
      console.log(`bandwidth limit 40 Mbps: measured ${at40.toFixed(1)} Mbps`);
      expect(at40).toBeGreaterThan(40 * 0.8);
      expect(at40).toBeLessThan(40 * 1.2);
      await a.update({ networkBandwidth: 20 });
      await b.update({ networkBandwidth: 20 });
      expect(b.resources.networkBandwidth).toBe(20);
      const at20 = await measure(a, b, 64 * 1024 * 80); // 5 MiB: about 2 s at 20 Mbps
      console.log(`bandwidth limit 20 Mbps after update(): measured ${at20.toFixed(1)} Mbps`);
      expect(at20).toBeGreaterThan(20 * 0.8);
      expect(at20).toBeLessThan(20 * 1.2);
      // Removing the limit, then setting one again.
      await a.update({ networkBandwidth: null });
      await b.update({ networkBandwidth: null });
      const free = await measure(a, b, 64 * 1024 * 160);
      console.log(`no bandwidth limit: measured ${free.toFixed(1)} Mbps`);
      expect(free).toBeGreaterThan(80);
      await a.update({ networkBandwidth: 30 });
      await b.update({ networkBandwidth: 30 });
      const at30 = await measure(a, b, 64 * 1024 * 112);
      console.log(`bandwidth limit 30 Mbps set again: measured ${at30.toFixed(1)} Mbps`);
      expect(at30).toBeGreaterThan(30 * 0.8);
      expect(at30).toBeLessThan(30 * 1.2);
    } finally {
      await a.remove({ force: true });
      await b.remove({ force: true });
    }
  });

  it('releases the address lease and the host-side veth on remove', async () => {
    const before = hostLinks();
    const a = await bridged('sleep 1000');
    const lease = join(t.stateRoot, 'cni', 'stratoswarm', a.ip!);
    expect(existsSync(lease)).toBe(true);
    expect(hostLinks().length).toBe(before.length + 1);
    await a.remove({ force: true });
    expect(existsSync(lease)).toBe(false);
    expect(hostLinks()).toEqual(before);
  });
});
