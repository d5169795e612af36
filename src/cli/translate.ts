/**
 * `run`/`create` flags → ContainerConfig. Pure: no runtime, no kernel, so the unit tests
 * check every translation without root.
 */
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { ContainerConfig, Personality, type ContainerConfigBuilder, type NetworkMode } from '../index.js';
import { RESTART_POLICIES, type RestartPolicyName, type RestartSpec } from '../container/config.js';
import { UsageError } from './errors.js';
import { parseBytes, parseCpus, parseGpus, parseInteger } from './units.js';

/** The flags `run` and `create` share, as commander hands them over. */
export interface CreateFlags {
  name?: string;
  env?: string[];
  volume?: string[];
  label?: string[];
  personality?: string;
  cpus?: string;
  memory?: string;
  pidsLimit?: string;
  gpus?: string;
  gpuShare?: boolean;
  device?: string[];
  cpusetCpus?: string;
  network?: string;
  user?: string;
  workdir?: string;
  hostname?: string;
  entrypoint?: string;
  readOnly?: boolean;
  userns?: string;
  tty?: boolean;
  init?: boolean;
  restart?: string;
}

export interface TranslateContext {
  /** For `-e NAME` (no value): the value comes from here, as docker takes it from its own environment. */
  env?: NodeJS.ProcessEnv;
  /** Relative volume sources resolve against this. */
  cwd?: string;
  /** The host's GPU indexes, for `--gpus all`. */
  hostGpus?: number[];
}

export function personalityByName(name: string): Personality {
  const p = Personality.presets.find((x) => x.name.toLowerCase() === name.trim().toLowerCase());
  if (!p) throw new UsageError(`--personality: expected one of ${Personality.presets.map((x) => x.name.toLowerCase()).join(', ')}, got "${name}"`);
  return p;
}

/**
 * `--restart` as docker takes it: no, on-failure[:N] (N retries at most), always,
 * unless-stopped. Without :N the retries come from the personality's restart rules.
 */
export function parseRestart(text: string): RestartSpec {
  const m = /^([a-z-]+)(?::(.*))?$/.exec(text.trim());
  const policy = m?.[1] as RestartPolicyName | undefined;
  if (!m || !RESTART_POLICIES.includes(policy!)) {
    throw new UsageError(`--restart: expected no, on-failure[:N], always or unless-stopped, got "${text}"`);
  }
  if (m[2] === undefined) return { policy: policy! };
  if (policy !== 'on-failure') throw new UsageError(`--restart: only on-failure takes a retry count (:N), got "${text}"`);
  if (!/^\d+$/.test(m[2]) || Number(m[2]) < 1 || Number(m[2]) > 1_000_000) {
    throw new UsageError(`--restart: on-failure:N needs a whole number of retries N from 1 to 1000000, got "${m[2]}"`);
  }
  return { policy: 'on-failure', maxRetries: Number(m[2]) };
}

/** `-e K=V` → [K, V]; `-e K` takes K from `env` (skipped when unset there, as docker does). */
export function parseEnv(items: string[], env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq === 0) throw new UsageError(`-e: expected NAME=VALUE, got "${item}"`);
    if (eq < 0) {
      const v = env[item];
      if (v !== undefined) out[item] = v;
    } else out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

const VOLUME_OPTIONS = ['ro', 'rw', 'idmap', 'noidmap'];

/**
 * `-v src:dst[:OPTIONS]` → a volume, OPTIONS a comma-separated list of `ro` or `rw` and
 * `idmap` (the default under a user namespace) or `noidmap`; relative sources are taken from
 * the current directory.
 */
export function parseVolume(text: string, cwd = process.cwd()): { source: string; target: string; readOnly: boolean; idmap?: boolean } {
  const parts = text.split(':');
  let mode = 'rw';
  if (parts.length === 3) mode = parts.pop()!;
  if (parts.length !== 2 || !parts[0] || !parts[1]) throw new UsageError(`-v: expected SOURCE:TARGET[:OPTIONS], got "${text}"`);
  const modes = mode.split(',');
  const bad = modes.find((m) => !VOLUME_OPTIONS.includes(m));
  if (bad !== undefined) throw new UsageError(`-v: option "${bad}" in "${text}" is not one of ${VOLUME_OPTIONS.join(', ')}`);
  if (modes.includes('ro') && modes.includes('rw')) throw new UsageError(`-v: "${text}" is both ro and rw`);
  if (modes.includes('idmap') && modes.includes('noidmap')) throw new UsageError(`-v: "${text}" is both idmap and noidmap`);
  const v: { source: string; target: string; readOnly: boolean; idmap?: boolean } = { source: resolve(cwd, parts[0]), target: parts[1], readOnly: modes.includes('ro') };
  if (modes.includes('noidmap')) v.idmap = false;
  return v;
}

export function parseLabels(items: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    out[eq < 0 ? item : item.slice(0, eq)] = eq < 0 ? '' : item.slice(eq + 1);
  }
  return out;
}

export function parseNetwork(text: string): NetworkMode {
  if (text === 'none' || text === 'host' || text === 'bridge') return text;
  throw new UsageError(`--network: expected none, host or bridge, got "${text}"`);
}

/** A docker-like generated name, when --name is not given. */
export function generatedName(): string {
  return `ss-${randomBytes(4).toString('hex')}`;
}

function applyGpus(b: ContainerConfigBuilder, text: string, hostGpus: number[] | undefined): void {
  const g = parseGpus(text);
  if ('count' in g) b.gpuCount(g.count);
  else if ('devices' in g) b.gpuDevices(g.devices);
  else if ('mig' in g) b.gpuMig(g.mig);
  else {
    if (!hostGpus || hostGpus.length === 0) throw new UsageError('--gpus all: this host has no GPUs');
    b.gpuDevices(hostGpus);
  }
}

/** The container configuration `run IMAGE [COMMAND...]` with these flags asks for. */
export function configFromFlags(image: string, command: string[], flags: CreateFlags, ctx: TranslateContext = {}): ContainerConfig {
  const b = ContainerConfig.builder().name(flags.name ?? generatedName()).image(image);
  if (command.length > 0) b.command(command);
  if (flags.env?.length) b.env(parseEnv(flags.env, ctx.env));
  for (const v of flags.volume ?? []) b.volume(parseVolume(v, ctx.cwd));
  for (const [k, v] of Object.entries(parseLabels(flags.label ?? []))) b.label(k, v);
  if (flags.personality !== undefined) b.personality(personalityByName(flags.personality));
  if (flags.cpus !== undefined) b.cpuLimit(parseCpus(flags.cpus));
  if (flags.memory !== undefined) b.memoryLimit(parseBytes(flags.memory, '--memory'));
  if (flags.pidsLimit !== undefined) b.pidsLimit(parseInteger(flags.pidsLimit, '--pids-limit', 1));
  if (flags.gpus !== undefined) applyGpus(b, flags.gpus, ctx.hostGpus);
  if (flags.gpuShare) b.gpuShare();
  if (flags.device?.length) b.devices(flags.device);
  if (flags.cpusetCpus !== undefined) b.cpusetCpus(flags.cpusetCpus);
  if (flags.network !== undefined) b.network(parseNetwork(flags.network));
  if (flags.user !== undefined) b.user(flags.user);
  if (flags.workdir !== undefined) b.workingDir(flags.workdir);
  if (flags.hostname !== undefined) b.hostname(flags.hostname);
  if (flags.entrypoint !== undefined) b.entrypoint(flags.entrypoint === '' ? [] : [flags.entrypoint]);
  if (flags.userns !== undefined && flags.userns !== 'private' && flags.userns !== 'host') {
    throw new UsageError(`--userns: "${flags.userns}" is not private or host`);
  }
  // --userns=host: no user namespace (container root is host root), as a checkpointable container needs.
  if (flags.readOnly || flags.userns === 'host') b.security({ ...(flags.readOnly ? { readonlyRoot: true } : {}), ...(flags.userns === 'host' ? { userNamespace: false } : {}) });
  if (flags.tty) b.terminal(true);
  if (flags.init) b.init(true);
  if (flags.restart !== undefined) {
    const { policy, ...opts } = parseRestart(flags.restart);
    b.restart(policy, opts);
  }
  return b.build();
}

/** `update` flags → the changes for container.update(). */
export function updateFromFlags(flags: Pick<CreateFlags, 'cpus' | 'memory' | 'pidsLimit' | 'cpusetCpus'>): Record<string, number | string> {
  const changes: Record<string, number | string> = {};
  if (flags.cpus !== undefined) changes.cpuLimit = parseCpus(flags.cpus);
  if (flags.memory !== undefined) changes.memoryLimit = parseBytes(flags.memory, '--memory');
  if (flags.pidsLimit !== undefined) changes.pidsLimit = parseInteger(flags.pidsLimit, '--pids-limit', 1);
  if (flags.cpusetCpus !== undefined) changes.cpusetCpus = flags.cpusetCpus;
  if (Object.keys(changes).length === 0) throw new UsageError('nothing to change: give --cpus, --memory, --pids-limit or --cpuset-cpus');
  return changes;
}
