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

describe.skipIf(!!SKIP)('bridge network (root, CNI)', () => {
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

  it('holds a bandwidth limit within ±20 % (egress and ingress shaped by the bandwidth plugin)', async () => {
    const mbps = 40;
    const a = await bridged('sleep 1000', mbps);
    const b = await bridged('sleep 1000', mbps);
    try {
      const bytes = 64 * 1024 * 160; // 10 MiB: about 2 s at 40 Mbps
      // The server counts what arrives until the client closes (busybox nc would otherwise
      // hang up as soon as its own stdin ends).
      const server = a.exec(['/bin/sh', '-c', 'nc -l -p 7001 -e /bin/sh -c "wc -c > /tmp/count"; cat /tmp/count']);
      await new Promise((r) => setTimeout(r, 200));
      const t0 = performance.now();
      const sent = await b.exec(['/bin/sh', '-c', `dd if=/dev/zero bs=65536 count=160 2>/dev/null | nc ${a.ip} 7001`]);
      const received = await server;
      const seconds = (performance.now() - t0) / 1000;
      expect(sent.exitCode).toBe(0);
      expect(Number(received.stdout.trim())).toBe(bytes);
      const measured = (bytes * 8) / seconds / 1e6;
      console.log(`bandwidth limit ${mbps} Mbps: measured ${measured.toFixed(1)} Mbps over ${seconds.toFixed(2)} s`);
      expect(measured).toBeGreaterThan(mbps * 0.8);
      expect(measured).toBeLessThan(mbps * 1.2);
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
