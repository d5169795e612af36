/**
 * Bridged networking through the standard CNI plugins (bridge, host-local, bandwidth), the
 * same parts podman and containerd use, invoked as the CNI spec (1.0) says: one process per
 * plugin, the operation in CNI_COMMAND, the network configuration on stdin, the result on
 * stdout; ADD runs the list in order passing each result on as prevResult, DEL runs it in
 * reverse with the result ADD returned.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { RuntimeError } from '../errors.js';
import type { HostFacts } from '../kernel/host.js';

export const CNI_VERSION = '1.0.0';

/** Runs `tc` through the kernel seam (off the event loop); `tolerateMissing` accepts an absent qdisc or device. */
async function tc(host: Pick<HostFacts, 'runProgram'>, args: string[], tolerateMissing = false): Promise<void> {
  const r = await host.runProgram('tc', args);
  if (r.status !== 0 && !(tolerateMissing && /No such file|Cannot find device|Invalid handle/.test(r.stderr))) {
    throw new RuntimeError(`tc ${args.join(' ')}: ${(r.stderr || `exit ${r.status}`).trim()}`, { code: 'ESYSCALL', step: 'network', path: 'tc' });
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
/** Where distributions install the reference plugins (Debian: containernetworking-plugins). */
export const DEFAULT_PLUGIN_DIRS = ['/usr/lib/cni', '/opt/cni/bin', '/usr/libexec/cni'];

export interface BridgeNetworkOptions {
  name?: string;
  bridge?: string;
  /** IPv4 subnet for containers; the bridge takes the first address as their gateway. */
  subnet?: string;
  pluginDirs?: string[];
  /** host-local's lease files. */
  dataDir: string;
  /** Where `tc` runs (the kernel seam). */
  kernel: Pick<HostFacts, 'runProgram'>;
}

export interface CniResult {
  cniVersion: string;
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; gateway?: string; interface?: number }[];
  routes?: unknown[];
  dns?: unknown;
}

export interface Attachment {
  /** The container's address, without prefix length. */
  ip: string;
  gateway: string | undefined;
  ifname: string;
  result: CniResult;
}

/** Mbps → the bandwidth plugin's rates (bits/s) and bursts (bits). */
export function bandwidthLimits(mbps: number): { ingressRate: number; ingressBurst: number; egressRate: number; egressBurst: number } {
  const rate = Math.round(mbps * 1_000_000);
  // A burst of about 10 ms of traffic (at least 64 KiB) keeps the token bucket from either
  // starving TCP or letting whole seconds through unshaped.
  const burst = Math.max(64 * 1024 * 8, Math.round(rate / 100));
  return { ingressRate: rate, ingressBurst: burst, egressRate: rate, egressBurst: burst };
}

export class BridgeNetwork {
  readonly name: string;
  readonly bridge: string;
  readonly subnet: string;
  private readonly pluginDirs: string[];
  private readonly dataDir: string;
  private readonly host: Pick<HostFacts, 'runProgram'>;

  constructor(opts: BridgeNetworkOptions) {
    this.name = opts.name ?? 'stratoswarm';
    this.bridge = opts.bridge ?? 'ssbr0';
    this.subnet = opts.subnet ?? '10.88.0.0/16';
    this.pluginDirs = opts.pluginDirs ?? DEFAULT_PLUGIN_DIRS;
    this.dataDir = opts.dataDir;
    this.host = opts.kernel;
  }

  /** The network configuration list, as a CNI .conflist would hold it. */
  conflist(bandwidthMbps?: number): { cniVersion: string; name: string; plugins: Record<string, unknown>[] } {
    const plugins: Record<string, unknown>[] = [
      {
        type: 'bridge',
        bridge: this.bridge,
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: this.subnet }]], dataDir: this.dataDir },
      },
    ];
    if (bandwidthMbps !== undefined) plugins.push({ type: 'bandwidth', ...bandwidthLimits(bandwidthMbps) });
    return { cniVersion: CNI_VERSION, name: this.name, plugins };
  }

  private pluginPath(type: string): string {
    for (const d of this.pluginDirs) {
      const p = join(d, type);
      if (fs.existsSync(p)) return p;
    }
    throw new RuntimeError(`CNI plugin "${type}" not found in ${this.pluginDirs.join(', ')} (install containernetworking-plugins)`, {
      code: 'EUNSUPPORTED',
      step: 'network',
      path: this.pluginDirs[0],
    });
  }

  private invoke(command: 'ADD' | 'DEL' | 'CHECK', type: string, config: object, containerId: string, netns: string, ifname: string): Promise<CniResult | undefined> {
    const bin = this.pluginPath(type);
    return new Promise((resolve, reject) => {
      const child = spawn(bin, [], {
        env: {
          PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
          CNI_COMMAND: command,
          CNI_CONTAINERID: containerId,
          CNI_NETNS: netns,
          CNI_IFNAME: ifname,
          CNI_PATH: this.pluginDirs.join(':'),
        },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (d: Buffer) => out.push(d));
      child.stderr.on('data', (d: Buffer) => err.push(d));
      child.on('error', (e) => reject(new RuntimeError(`CNI ${type} ${command}: ${e.message}`, { code: 'ESYSCALL', step: 'network', path: bin, cause: e })));
      child.on('close', (code) => {
        const text = Buffer.concat(out).toString('utf8').trim();
        if (code !== 0) {
          // Errors are a JSON object {code, msg, details} on stdout (CNI spec, "Error").
          let msg = Buffer.concat(err).toString('utf8').trim() || text;
          try {
            const e = JSON.parse(text) as { msg?: string; details?: string };
            msg = [e.msg, e.details].filter(Boolean).join(': ') || msg;
          } catch {
            // not JSON
          }
          reject(new RuntimeError(`CNI ${type} ${command} for ${containerId}: ${msg || `exit ${code}`}`, { code: 'ESYSCALL', step: 'network', path: bin }));
          return;
        }
        resolve(text ? (JSON.parse(text) as CniResult) : undefined);
      });
      child.stdin.end(JSON.stringify(config));
    });
  }

  /** Attaches the network namespace at `netns` to the bridge (with shaping when asked). */
  async add(containerId: string, netns: string, bandwidthMbps?: number, ifname = 'eth0'): Promise<Attachment> {
    const list = this.conflist(bandwidthMbps);
    let prev: CniResult | undefined;
    const done: Record<string, unknown>[] = [];
    try {
      for (const plugin of list.plugins) {
        const conf = { ...plugin, cniVersion: list.cniVersion, name: list.name, ...(prev ? { prevResult: prev } : {}) };
        prev = (await this.invoke('ADD', plugin.type as string, conf, containerId, netns, ifname)) ?? prev;
        done.push(plugin);
      }
    } catch (e) {
      // Undo what was added, newest first, so a failed attach leaves no veth or lease. The
      // ADD failure is what is thrown; a DEL that fails too is noted on it (message and
      // `suppressed`), never thrown in its place.
      const suppressed: unknown[] = [];
      for (const plugin of done.reverse()) {
        const conf = { ...plugin, cniVersion: list.cniVersion, name: list.name, ...(prev ? { prevResult: prev } : {}) };
        try {
          await this.invoke('DEL', plugin.type as string, conf, containerId, netns, ifname);
        } catch (del) {
          suppressed.push(del);
        }
      }
      if (suppressed.length && e instanceof Error) {
        e.message += ` (undoing the attach failed too: ${suppressed.map(message).join('; ')})`;
        (e as Error & { suppressed?: unknown[] }).suppressed = suppressed;
      }
      throw e;
    }
    const result = prev!;
    const ip = result.ips?.find((i) => i.address.includes('.')) ?? result.ips?.[0];
    if (!ip) throw new RuntimeError(`CNI ADD for ${containerId} returned no address`, { code: 'EPROTO', step: 'network' });
    return { ip: ip.address.split('/')[0]!, gateway: ip.gateway, ifname, result };
  }

  /**
   * Changes the shaping of an attached container and returns the attachment's new CNI result.
   * A changed rate rewrites the two token buckets the bandwidth plugin made (`tc qdisc
   * change`: the host side of the veth shapes traffic into the container, the ifb device
   * traffic out of it) without a moment unshaped; adding or removing the limit runs the
   * plugin's ADD or DEL. Errors say which of these failed, after what was asked ("change
   * bandwidth of <id> from 10 to 20 Mbit/s: tc qdisc change dev …: …").
   */
  async setBandwidth(containerId: string, netns: string, result: CniResult, fromMbps: number | undefined, toMbps: number | undefined, ifname = 'eth0'): Promise<CniResult> {
    const conf = (mbps: number) => ({ type: 'bandwidth', ...bandwidthLimits(mbps), cniVersion: CNI_VERSION, name: this.name, prevResult: result });
    const hostSide = (result.interfaces ?? []).filter((i) => !i.sandbox && i.name !== this.bridge).map((i) => i.name);
    const context =
      fromMbps !== undefined && toMbps !== undefined
        ? `change bandwidth of ${containerId} from ${fromMbps} to ${toMbps} Mbit/s`
        : fromMbps !== undefined
          ? `remove the bandwidth limit of ${containerId}`
          : `limit bandwidth of ${containerId} to ${toMbps} Mbit/s`;
    try {
      if (fromMbps !== undefined && toMbps !== undefined) {
        const l = bandwidthLimits(toMbps);
        for (const dev of hostSide) {
          // bandwidth plugin: rate in bits/s, burst in bits; tc wants bytes for the burst.
          await tc(this.host, ['qdisc', 'change', 'dev', dev, 'root', 'tbf', 'rate', `${l.ingressRate}bit`, 'burst', `${Math.ceil(l.ingressBurst / 8)}b`, 'latency', '25ms']);
        }
        return result;
      }
      if (fromMbps !== undefined) {
        await this.invoke('DEL', 'bandwidth', conf(fromMbps), containerId, netns, ifname);
        // The plugin's DEL removes the ifb device but not the veth's token bucket or the ingress
        // redirect to the (now missing) ifb, which would drop every packet from the container.
        for (const dev of hostSide.filter((d) => !d.startsWith('bwp'))) {
          await tc(this.host, ['qdisc', 'del', 'dev', dev, 'root'], true);
          await tc(this.host, ['qdisc', 'del', 'dev', dev, 'ingress'], true);
        }
        return { ...result, interfaces: (result.interfaces ?? []).filter((i) => !i.name.startsWith('bwp')) };
      }
      if (toMbps !== undefined) return (await this.invoke('ADD', 'bandwidth', conf(toMbps), containerId, netns, ifname)) ?? result;
      return result;
    } catch (e) {
      if (e instanceof RuntimeError) throw e.wrap(context);
      throw new RuntimeError(`${context}: ${message(e)}`, { code: 'ESYSCALL', step: 'network', cause: e });
    }
  }

  /** Detaches; tolerates a namespace that is already gone (CNI spec: DEL must not fail then). */
  async del(containerId: string, netns: string, result: CniResult | undefined, bandwidthMbps?: number, ifname = 'eth0'): Promise<void> {
    const list = this.conflist(bandwidthMbps);
    const errors: unknown[] = [];
    for (const plugin of [...list.plugins].reverse()) {
      const conf = { ...plugin, cniVersion: list.cniVersion, name: list.name, ...(result ? { prevResult: result } : {}) };
      await this.invoke('DEL', plugin.type as string, conf, containerId, netns, ifname).catch((e: unknown) => errors.push(e));
    }
    if (errors.length) throw errors[0];
  }
}
