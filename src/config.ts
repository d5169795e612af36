import { isAbsolute } from 'node:path';
import { Problems } from './errors.js';
import { parsePoolSetting } from './pool/shape.js';

/** How GPUs reach containers: `native` (no GPU injection) or `nvidia` (NVML + CDI). */
export type RuntimeEngine = 'native' | 'nvidia';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface RuntimeOptions {
  engine: RuntimeEngine;
  registry: string;
  evolutionEnabled: boolean;
  evolutionRate: number;
  /** Per-boot runtime state (pids, exit codes, the spawner socket). */
  stateRoot: string;
  /** Images, unpacked layers and the containers' writable layers. */
  imageRoot: string;
  /** The one cgroup (in every hierarchy) under which all containers live. */
  cgroupParent: string;
  logLevel: LogLevel;
  /** Warm pools kept from first use: STRATOSWARM_POOL="image=N[,image=N]". */
  pool: { image: string; size: number }[];
  /** Registries spoken to over plain HTTP (host[:port]); every other one over HTTPS. */
  insecureRegistries: string[];
  /** Registry credentials (a Docker config.json or containers auth.json); '' = the usual places. */
  registryAuthFile: string;
}

export const DEFAULT_OPTIONS: RuntimeOptions = {
  engine: 'native',
  registry: 'registry.stratoswarm.io',
  evolutionEnabled: false,
  evolutionRate: 0.1,
  stateRoot: '/run/stratoswarm',
  imageRoot: '/var/lib/stratoswarm',
  cgroupParent: 'stratoswarm',
  logLevel: 'info',
  pool: [],
  insecureRegistries: [],
  registryAuthFile: '',
};

/** The environment variables read, and the option each one sets. */
export const ENVIRONMENT: Record<string, keyof RuntimeOptions> = {
  STRATOSWARM_RUNTIME_ENGINE: 'engine',
  STRATOSWARM_REGISTRY: 'registry',
  STRATOSWARM_EVOLUTION_ENABLED: 'evolutionEnabled',
  STRATOSWARM_EVOLUTION_RATE: 'evolutionRate',
  STRATOSWARM_STATE_ROOT: 'stateRoot',
  STRATOSWARM_IMAGE_ROOT: 'imageRoot',
  STRATOSWARM_CGROUP_PARENT: 'cgroupParent',
  STRATOSWARM_LOG_LEVEL: 'logLevel',
  STRATOSWARM_POOL: 'pool',
  STRATOSWARM_INSECURE_REGISTRIES: 'insecureRegistries',
  STRATOSWARM_REGISTRY_AUTH_FILE: 'registryAuthFile',
};

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
// A registry is a host (name or IPv4), an optional port and an optional path.
const REGISTRY_RE = /^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::\d{1,5})?(?:\/[a-z0-9._-]+)*$/;
const HOST_PORT_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9a-fA-F:]+\])(?::\d{1,5})?$/;
const CGROUP_NAME_RE = /^[A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)*$/;

function parseBool(v: string): boolean | undefined {
  const s = v.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off'].includes(s)) return false;
  return undefined;
}

/**
 * Resolves the runtime options: explicit options win over the environment, which wins over
 * the defaults. Every invalid value, wherever it came from, is reported at once.
 */
export function resolveOptions(
  explicit: Partial<RuntimeOptions> = {},
  env: NodeJS.ProcessEnv = process.env,
): RuntimeOptions {
  const problems = new Problems();
  const raw: Record<string, unknown> = { ...DEFAULT_OPTIONS };
  const origin: Record<string, string> = {};
  for (const [variable, key] of Object.entries(ENVIRONMENT)) {
    const v = env[variable];
    if (v === undefined || v === '') continue;
    origin[key] = variable;
    if (key === 'evolutionEnabled') {
      const b = parseBool(v);
      if (b === undefined) problems.add(variable, `expected true or false, got "${v}"`);
      else raw[key] = b;
    } else if (key === 'evolutionRate') {
      const n = Number(v);
      if (v.trim() === '' || !Number.isFinite(n)) problems.add(variable, `expected a number, got "${v}"`);
      else raw[key] = n;
    } else if (key === 'pool') {
      try {
        raw[key] = parsePoolSetting(v);
      } catch (e) {
        problems.add(variable, (e as Error).message);
      }
    } else if (key === 'insecureRegistries') {
      raw[key] = v.split(',').map((x) => x.trim()).filter(Boolean);
    } else {
      raw[key] = v.trim();
    }
  }
  for (const [key, value] of Object.entries(explicit)) {
    if (value === undefined) continue;
    raw[key] = value;
    origin[key] = `options.${key}`;
  }
  const name = (key: keyof RuntimeOptions) => origin[key] ?? `options.${key}`;

  let engine = raw.engine as string;
  if (engine === 'nvidia-docker') engine = 'nvidia'; // the spelling the original description uses
  if (engine !== 'native' && engine !== 'nvidia') {
    problems.add(name('engine'), `expected "native" or "nvidia" (alias "nvidia-docker"), got "${String(raw.engine)}"`);
  }
  if (typeof raw.registry !== 'string' || !REGISTRY_RE.test(raw.registry)) {
    problems.add(name('registry'), `expected host[:port][/path], got "${String(raw.registry)}"`);
  }
  if (typeof raw.evolutionEnabled !== 'boolean') {
    problems.add(name('evolutionEnabled'), `expected a boolean, got ${JSON.stringify(raw.evolutionEnabled)}`);
  }
  const rate = raw.evolutionRate;
  if (typeof rate !== 'number' || !Number.isFinite(rate) || rate <= 0 || rate > 1) {
    problems.add(name('evolutionRate'), `expected a number in (0, 1], got ${JSON.stringify(rate)}`);
  }
  for (const key of ['stateRoot', 'imageRoot'] as const) {
    const p = raw[key];
    if (typeof p !== 'string' || !isAbsolute(p) || p.includes('\0') || p.includes('\n')) {
      problems.add(name(key), `expected an absolute path, got ${JSON.stringify(p)}`);
    }
  }
  const parent = raw.cgroupParent;
  if (typeof parent !== 'string' || !CGROUP_NAME_RE.test(parent) || parent.split('/').some((c) => c === '..' || c === '.')) {
    problems.add(name('cgroupParent'), `expected a relative cgroup path like "stratoswarm", got ${JSON.stringify(parent)}`);
  }
  if (!LOG_LEVELS.includes(raw.logLevel as LogLevel)) {
    problems.add(name('logLevel'), `expected one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(raw.logLevel)}`);
  }
  const insecure = raw.insecureRegistries;
  if (!Array.isArray(insecure) || insecure.some((h) => typeof h !== 'string' || !HOST_PORT_RE.test(h))) {
    problems.add(name('insecureRegistries'), `expected a list of host[:port], got ${JSON.stringify(insecure)}`);
  }
  const auth = raw.registryAuthFile;
  if (typeof auth !== 'string' || (auth !== '' && !isAbsolute(auth))) {
    problems.add(name('registryAuthFile'), `expected an absolute path, got ${JSON.stringify(auth)}`);
  }
  problems.throwIfAny('invalid runtime configuration');
  return { ...(raw as unknown as RuntimeOptions), engine: engine as RuntimeEngine, insecureRegistries: [...(insecure as string[])] };
}
