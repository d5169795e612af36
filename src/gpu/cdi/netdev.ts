/**
 * CDI `netDevices`: a host network interface moved into the container's network namespace
 * under the spec's name, as the OCI runtime specification's `linux.netDevices` has it. The
 * move and the rename are one netlink request (`ip link set dev <host> netns <pid> name
 * <name>`), so the interface never appears under its host name inside nor clashes with one
 * of that name there; its addresses, MTU and state are left as they are. At removal it is
 * moved back under its host name while the container's namespace still exists. When the
 * namespace dies first (the init ended), the kernel returns a physical interface to the host
 * under its container name, which is then renamed back — found by the interface index
 * recorded at the move, never by name alone — and a virtual one (veth) is gone with it.
 * The container needs a network namespace of its own: with network "host" it is an error.
 */
import { RuntimeError } from '../../errors.js';
import type { ProgramResult } from '../../kernel/host.js';
import type { CdiNetDevice } from './spec.js';

type Run = (file: string, args: readonly string[]) => Promise<ProgramResult>;

export interface PlanNetDevice extends CdiNetDevice {
  /** Where the spec set it, for errors. */
  origin: string;
  /** Its interface index, recorded at the move. */
  ifindex?: number | undefined;
}

/** What the host's /sys/class/net says. */
export interface NetHost {
  has(name: string): boolean;
  ifindex(name: string): number | undefined;
}

/** Checks what can be checked before anything exists: the container's network mode and that the interfaces are there. */
export function checkNetDevices(devices: readonly PlanNetDevice[], network: string, hostHas: (name: string) => boolean): void {
  devices.forEach((d, i) => {
    const field = `devices: ${d.origin}: netDevices[${i}]`;
    if (network === 'host') throw new RuntimeError(`${field}: the container shares the host's network namespace (network "host"); a network device needs one of its own`, { code: 'EINVAL', step: 'config' });
    // Under its container name it is one a restart takes back (attachNetDevices checks its index).
    if (!hostHas(d.hostInterfaceName) && !hostHas(d.name)) throw new RuntimeError(`${field}.hostInterfaceName: the host has no network interface ${d.hostInterfaceName}`, { code: 'ENOTFOUND', step: 'config', path: `/sys/class/net/${d.hostInterfaceName}` });
  });
}

async function ip(run: Run, args: string[], what: string): Promise<void> {
  const r = await run('ip', args);
  if (r.status !== 0) throw new RuntimeError(`${what}: ip ${args.join(' ')}: ${r.stderr.trim() || `exit status ${r.status}`}`, { code: 'ESYSCALL', step: 'network' });
}

/**
 * Moves each interface into the namespace of `pid`, renamed. One left on the host under its
 * container name (a restart: a physical interface comes back under the name it had inside)
 * is taken under that name. A failure moves back those already moved and is thrown.
 */
export async function attachNetDevices(devices: PlanNetDevice[], pid: number, run: Run, host: NetHost): Promise<void> {
  const moved: PlanNetDevice[] = [];
  try {
    for (const [i, d] of devices.entries()) {
      const back = d.ifindex !== undefined && host.ifindex(d.name) === d.ifindex;
      const from = host.has(d.hostInterfaceName) || !back ? d.hostInterfaceName : d.name;
      d.ifindex = host.ifindex(from);
      await ip(run, ['link', 'set', 'dev', from, 'netns', String(pid), 'name', d.name], `devices: ${d.origin}: netDevices[${i}]`);
      moved.push(d);
    }
  } catch (e) {
    await detachNetDevices(moved, pid, run, host).catch(() => undefined);
    throw e;
  }
}

/**
 * Moves the interfaces back to the host (the namespace of pid 1) under their host names; with
 * `pid` undefined (the namespace is gone), renames those the kernel returned under their
 * container names.
 */
export async function detachNetDevices(devices: readonly PlanNetDevice[], pid: number | undefined, run: Run, host: NetHost): Promise<void> {
  let first: unknown;
  for (const d of devices) {
    try {
      if (pid !== undefined) {
        const r = await run('nsenter', ['--target', String(pid), '--net', '--', 'ip', 'link', 'set', 'dev', d.name, 'netns', '1', 'name', d.hostInterfaceName]);
        if (r.status !== 0) throw new RuntimeError(`network device ${d.name}: moving it back as ${d.hostInterfaceName}: ${r.stderr.trim()}`, { code: 'ESYSCALL', step: 'network' });
      } else if (d.ifindex !== undefined && !host.has(d.hostInterfaceName) && host.ifindex(d.name) === d.ifindex) {
        await ip(run, ['link', 'set', 'dev', d.name, 'name', d.hostInterfaceName], `network device ${d.name}: renaming it back`);
      }
    } catch (e) {
      first ??= e;
    }
  }
  if (first) throw first;
}
