/**
 * An OCI bundle's config.json, translated into the runtime's own plan pieces: the rootfs
 * directory used as it is, the mounts in order, the process (argv, env, cwd, user, the five
 * capability sets, rlimits, no_new_privs, seccomp), namespaces, cgroup limits, masked and
 * read-only paths, hooks and annotations. Pure but for reading the host facts it is given:
 * a field the spec allows that this runtime does not carry out is an error that names it,
 * never ignored (unknown properties are ignored, as the spec requires).
 */
import { isAbsolute, join, posix } from 'node:path';
import { ConfigError, Problems } from '../errors.js';
import type { Resources } from '../isolation/resources.js';
import { idMapText, idMappings, resources } from './config-linux.js';
import { EVOLUTION_ANNOTATION, evolutionAnnotation } from './evolution-annotation.js';
import { Personality } from '../personality/personality.js';
import type { JoinNamespaces, PlanMknod, PlanMount, PlanSecurity, PlanUser } from '../plan/types.js';
import { capabilityMask, normalizeCapability, type CapabilityName } from '../secure-runtime/capabilities.js';
import { RLIMITS } from '../secure-runtime/profile-options.js';
import { RESTART_POLICIES } from '../container/config.js';
import { MS } from '../plan/encode.js';
import type { HostFacts } from './host.js';
import { mounts, PROPAGATION } from './config-mounts.js';
import { sysctlProblem } from './sysctl.js';
import { checkPlacement } from '../isolation/placement.js';

export interface OciHook {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

export type HookName = 'createRuntime' | 'createContainer' | 'startContainer' | 'poststart' | 'poststop';
export const HOOK_NAMES: readonly HookName[] = ['createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'];

/** What a bundle asks for, in the runtime's terms. */
export interface OciTranslation {
  /** What the runtime leaves out and says so (the spec's "logged as a warning"), each naming its field. */
  warnings: string[];
  rootfs: string;
  readonlyRoot: boolean;
  mounts: PlanMount[];
  process: { argv: string[]; env: string[]; cwd: string; user: PlanUser; terminal: boolean; oomScoreAdj?: number | undefined };
  security: Omit<PlanSecurity, 'seccomp'>;
  /** linux.seccomp as given, compiled to BPF by the caller (it needs the kernel). */
  seccomp?: unknown;
  hostname: string;
  network: 'none' | 'host';
  /** Existing namespaces joined by path (linux.namespaces[].path). */
  join: JoinNamespaces;
  /** The host's namespaces shared: the types linux.namespaces leaves out. */
  shareHost: (typeof SHAREABLE)[number][];
  /** A new user namespace with these id maps (linux.uidMappings, gidMappings), as uid_map/gid_map lines. */
  idMaps?: { uid: string; gid: string; size: number } | undefined;
  resources: Resources;
  cgroupsPath?: string | undefined;
  /** Namespaced kernel parameters, written inside the container's namespaces after create. */
  sysctl: Record<string, string>;
  /** Host device nodes bound into the container's /dev (linux.devices, in a user namespace). */
  devices: string[];
  /** Device nodes made in the container (linux.devices). */
  mknods: PlanMknod[];
  /** linux.rootfsPropagation as mount(2) flags (absent: rprivate). */
  rootfsPropagation?: number | undefined;
  hooks: Partial<Record<HookName, OciHook[]>>;
  annotations: Record<string, string>;
  personality?: string | undefined;
  restart?: string | undefined;
}

type Json = Record<string, unknown>;

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const strList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/**
 * linux.devices: each node is made with mknod(2) as the entry says (type, major, minor,
 * fileMode, uid, gid). In a user namespace mknod is refused by the kernel, so there the
 * host's node of that path is bound instead, as runc does.
 */
function deviceList(v: unknown, userns: boolean, problems: Problems, host: HostFacts): { devices: string[]; mknods: PlanMknod[] } {
  const devices: string[] = [];
  const mknods: PlanMknod[] = [];
  if (v === undefined) return { devices, mknods };
  if (!Array.isArray(v)) {
    problems.add('linux.devices', 'expected a list');
    return { devices, mknods };
  }
  const int = (x: unknown, max: number) => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= max;
  v.forEach((d: unknown, i) => {
    const f = `linux.devices[${i}]`;
    if (!isObj(d) || typeof d.path !== 'string' || !posix.isAbsolute(d.path) || posix.normalize(d.path) === '/') {
      problems.add(`${f}.path`, 'expected an absolute path other than /');
      return;
    }
    const path = posix.normalize(d.path);
    const type = d.type === 'u' ? 'c' : d.type;
    if (type !== 'c' && type !== 'b' && type !== 'p') problems.add(`${f}.type`, `expected c, b, u or p, not ${JSON.stringify(d.type)}`);
    const numbered = type !== 'p';
    if (numbered && !int(d.major, 0xfff)) problems.add(`${f}.major`, 'expected an integer from 0 to 4095');
    if (numbered && !int(d.minor, 0xfffff)) problems.add(`${f}.minor`, 'expected an integer from 0 to 1048575');
    if (d.fileMode !== undefined && !int(d.fileMode, 0o7777)) problems.add(`${f}.fileMode`, 'expected permission bits from 0 to 4095 (07777)');
    if (d.uid !== undefined && !int(d.uid, 0xfffffffe)) problems.add(`${f}.uid`, 'expected a uid');
    if (d.gid !== undefined && !int(d.gid, 0xfffffffe)) problems.add(`${f}.gid`, 'expected a gid');
    if (userns) {
      if (posix.dirname(path) !== '/dev') problems.add(`${f}.path`, 'in a user namespace devices are bound from the host: only nodes directly under /dev');
      else if (!host.deviceExists(path)) problems.add(`${f}.path`, `${path} does not exist on the host (in a user namespace devices are bound from the host)`);
      else devices.push(path);
      return;
    }
    if (type !== 'c' && type !== 'b' && type !== 'p') return;
    mknods.push({
      path, type, major: numbered ? Number(d.major) : 0, minor: numbered ? Number(d.minor) : 0,
      mode: d.fileMode === undefined ? 0o666 : Number(d.fileMode), uid: Number(d.uid ?? 0), gid: Number(d.gid ?? 0),
    });
  });
  return { devices, mknods };
}

/**
 * process.capabilities. A name that is no capability, or one this runtime cannot grant (not
 * in its own bounding set), is left out with a warning: since runtime-spec 1.1 such values
 * MUST be logged as warnings and runtimes SHOULD NOT fail on them (a restricted host lacks
 * some). Anything else that is not a list of names is an error naming the field.
 */
function capabilities(v: unknown, problems: Problems, warnings: string[], host: HostFacts): PlanSecurity['capabilities'] {
  const sets = { bounding: 0n, effective: 0n, permitted: 0n, inheritable: 0n, ambient: 0n };
  if (v === undefined) return sets;
  if (!isObj(v)) {
    problems.add('process.capabilities', 'expected an object');
    return sets;
  }
  const grantable = host.boundingSet?.();
  for (const k of Object.keys(sets) as (keyof typeof sets)[]) {
    const list = v[k];
    if (list === undefined) continue;
    if (!strList(list)) {
      problems.add(`process.capabilities.${k}`, 'expected a list of capability names');
      continue;
    }
    const names: CapabilityName[] = [];
    const unknown: string[] = [];
    const withheld: string[] = [];
    for (const n of list) {
      const c = normalizeCapability(n);
      if (!c || c === 'ALL') unknown.push(n);
      else if (grantable !== undefined && (capabilityMask([c]) & grantable) === 0n) withheld.push(n);
      else names.push(c);
    }
    if (unknown.length) warnings.push(`process.capabilities.${k}: ignoring ${unknown.join(', ')}: not a capability`);
    if (withheld.length) warnings.push(`process.capabilities.${k}: ignoring ${withheld.join(', ')}: not in this runtime's bounding set, so it cannot be granted`);
    sets[k] = capabilityMask(names);
  }
  return sets;
}

function rlimits(v: unknown, problems: Problems): PlanSecurity['rlimits'] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) {
    problems.add('process.rlimits', 'expected a list');
    return [];
  }
  return v.flatMap((r: unknown, i) => {
    const f = `process.rlimits[${i}]`;
    const type = isObj(r) ? r.type : undefined;
    const resource = typeof type === 'string' ? (RLIMITS as Record<string, number>)[type] : undefined;
    if (!isObj(r) || resource === undefined) {
      problems.add(`${f}.type`, `unknown rlimit ${JSON.stringify(type)}`);
      return [];
    }
    if (typeof r.soft !== 'number' || typeof r.hard !== 'number' || r.soft < 0 || r.hard < r.soft) {
      problems.add(f, 'expected numbers soft <= hard');
      return [];
    }
    return [{ name: type as string, resource, soft: BigInt(r.soft), hard: BigInt(r.hard) }];
  });
}

function user(v: unknown, problems: Problems): PlanUser {
  if (!isObj(v)) return { uid: 0, gid: 0, groups: [] };
  const id = (x: unknown, f: string) => {
    if (x === undefined) return 0;
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0) problems.add(`process.user.${f}`, 'expected a non-negative integer');
    return Number(x) || 0;
  };
  let umask: number | undefined;
  if (v.umask !== undefined) {
    if (typeof v.umask !== 'number' || !Number.isInteger(v.umask) || v.umask < 0 || v.umask > 0o777) problems.add('process.user.umask', 'expected an integer from 0 to 511 (0777)');
    else umask = v.umask;
  }
  if (v.username !== undefined) problems.add('process.user.username', 'is for Windows');
  const groups = v.additionalGids === undefined ? [] : v.additionalGids;
  if (!Array.isArray(groups) || groups.some((g) => typeof g !== 'number')) problems.add('process.user.additionalGids', 'expected a list of gids');
  const gid = id(v.gid, 'gid');
  return { uid: id(v.uid, 'uid'), gid, groups: Array.isArray(groups) ? [...new Set([gid, ...(groups as number[])])] : [gid], ...(umask !== undefined ? { umask } : {}) };
}

function hooks(v: unknown, problems: Problems): OciTranslation['hooks'] {
  const out: OciTranslation['hooks'] = {};
  if (v === undefined) return out;
  if (!isObj(v)) {
    problems.add('hooks', 'expected an object');
    return out;
  }
  for (const [k, list] of Object.entries(v)) {
    // prestart is the older name for the point createRuntime now names (the spec keeps it).
    const name = (k === 'prestart' ? 'createRuntime' : k) as HookName;
    if (!HOOK_NAMES.includes(name)) continue;
    if (!Array.isArray(list)) {
      problems.add(`hooks.${k}`, 'expected a list');
      continue;
    }
    list.forEach((h: unknown, i) => {
      const f = `hooks.${k}[${i}]`;
      if (!isObj(h) || typeof h.path !== 'string' || !isAbsolute(h.path)) problems.add(`${f}.path`, 'expected an absolute path');
      else if (h.args !== undefined && !strList(h.args)) problems.add(`${f}.args`, 'expected a list of strings');
      else if (h.env !== undefined && !strList(h.env)) problems.add(`${f}.env`, 'expected a list of strings');
      else if (h.timeout !== undefined && !(typeof h.timeout === 'number' && Number.isInteger(h.timeout) && h.timeout > 0)) problems.add(`${f}.timeout`, 'expected a positive number of seconds');
      else (out[name] ??= []).push({ path: h.path, args: h.args as string[] | undefined, env: h.env as string[] | undefined, timeout: h.timeout as number | undefined });
    });
  }
  return out;
}

/**
 * linux.uidMappings and gidMappings with a joined user namespace: optional, and when given
 * they must be the maps it has (read from /proc/<pid>/uid_map when the path is a process's
 * /proc/<pid>/ns/user). Undefined: no new user namespace is made.
 */
function joinedUserMaps(linux: Json, path: string, problems: Problems, host: HostFacts): undefined {
  const pid = /^\/proc\/(\d+)\/ns\/user$/.exec(path)?.[1];
  for (const [key, file] of [['uidMappings', 'uid_map'], ['gidMappings', 'gid_map']] as const) {
    const list = linux[key];
    if (list === undefined || (Array.isArray(list) && list.length === 0)) continue;
    const given = idMapText(list, `linux.${key}`, problems);
    if (!given || pid === undefined) continue;
    // Unreadable: the namespace's process is gone, and the spawner's open of the path says so.
    const has = host.idMap?.(Number(pid), file);
    if (has === undefined) continue;
    const norm = (t: string) => t.trim().split('\n').map((l) => l.trim().split(/\s+/).join(' ')).sort().join('\n');
    if (norm(has) !== norm(given.text)) problems.add(`linux.${key}`, `differ from the maps of the joined user namespace (${path}: ${norm(has).replace(/\n/g, ', ')})`);
  }
  return undefined;
}

/** The namespaces joined by path, by the spec's type name and the plan's. */
const JOINABLE: Record<string, keyof JoinNamespaces> = { network: 'net', ipc: 'ipc', uts: 'uts', pid: 'pid', user: 'user', mount: 'mnt', cgroup: 'cgroup' };

/** The host namespaces a container may share: a type linux.namespaces leaves out. */
export const SHAREABLE = ['pid', 'ipc', 'uts'] as const;

function namespaces(v: unknown, problems: Problems, host: HostFacts, join: JoinNamespaces, shared: Set<(typeof SHAREABLE)[number]>): 'none' | 'host' {
  if (!Array.isArray(v)) {
    problems.add('linux.namespaces', 'expected a list');
    return 'none';
  }
  const types = new Set<string>();
  v.forEach((n: unknown, i) => {
    if (!isObj(n) || typeof n.type !== 'string') return problems.add(`linux.namespaces[${i}].type`, 'expected a namespace type');
    if (n.path !== undefined && n.path !== '') {
      const f = `linux.namespaces[${i}].path`;
      const as = JOINABLE[n.type];
      if (!as) problems.add(f, `joining an existing ${n.type} namespace is not supported`);
      else if (typeof n.path !== 'string' || !isAbsolute(n.path)) problems.add(f, 'expected an absolute path');
      else if (!host.pathKind(n.path)) problems.add(f, `\`${n.path}\` does not exist`);
      else join[as] = n.path;
    }
    if (n.type === 'time') problems.add(`linux.namespaces[${i}]`, 'a time namespace is not supported');
    else if (!['pid', 'network', 'mount', 'ipc', 'uts', 'cgroup', 'user'].includes(n.type)) problems.add(`linux.namespaces[${i}].type`, `unknown namespace "${n.type}"`);
    types.add(n.type);
  });
  if (!types.has('mount')) problems.add('linux.namespaces', "the host's mount namespace cannot be shared: the container's root and mounts need one of its own");
  for (const t of SHAREABLE) if (!types.has(t)) shared.add(t);
  return types.has('network') ? 'none' : 'host';
}

/**
 * linux.cgroupsPath as runc's cgroupfs driver reads it: absolute is relative to each
 * hierarchy's root, relative is below the runtime's parent (plan.ts). Empty means the default.
 */
function cgroupsPath(v: unknown, problems: Problems): string | undefined {
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string') {
    problems.add('linux.cgroupsPath', 'expected a path');
    return undefined;
  }
  try {
    checkPlacement(v.replace(/^\/+/, ''), 'linux.cgroupsPath');
  } catch (e) {
    problems.add('linux.cgroupsPath', (e as Error).message.replace(/^linux\.cgroupsPath /, ''));
    return undefined;
  }
  return v;
}

/** Fields the spec allows that this runtime does not carry out, when set to anything but empty. */
const UNSUPPORTED: [string, (c: Json) => unknown][] = [
  ['process.apparmorProfile', (c) => (c.process as Json | undefined)?.apparmorProfile],
  ['process.selinuxLabel', (c) => (c.process as Json | undefined)?.selinuxLabel],
  ['process.scheduler', (c) => (c.process as Json | undefined)?.scheduler],
  ['process.ioPriority', (c) => (c.process as Json | undefined)?.ioPriority],
  ['process.execCPUAffinity', (c) => (c.process as Json | undefined)?.execCPUAffinity],
  ['domainname', (c) => c.domainname],
  ['linux.mountLabel', (c) => (c.linux as Json | undefined)?.mountLabel],
  ['linux.intelRdt', (c) => (c.linux as Json | undefined)?.intelRdt],
  ['linux.personality', (c) => (c.linux as Json | undefined)?.personality],
  ['linux.timeOffsets', (c) => (c.linux as Json | undefined)?.timeOffsets],
  ['linux.memoryPolicy', (c) => (c.linux as Json | undefined)?.memoryPolicy],
];

const isEmpty = (x: unknown) => x === undefined || x === '' || (Array.isArray(x) && x.length === 0) || (isObj(x) && Object.keys(x).length === 0);


export type { HostFacts };

/** Translates a bundle's config.json; throws one ConfigError listing every bad field. */
export function translateConfig(bundle: string, config: unknown, host: HostFacts): OciTranslation {
  const problems = new Problems();
  const warnings: string[] = [];
  if (!isObj(config)) throw new ConfigError('invalid config.json', [{ field: 'config.json', problem: 'expected a JSON object' }]);
  const c = config;
  if (typeof c.ociVersion !== 'string' || !/^1\.\d+\.\d+/.test(c.ociVersion)) problems.add('ociVersion', `expected a 1.x version, got ${JSON.stringify(c.ociVersion)}`);
  const root = c.root;
  if (!isObj(root) || typeof root.path !== 'string' || root.path === '') problems.add('root.path', 'expected the rootfs directory');
  const rootfs = isObj(root) && typeof root.path === 'string' ? (isAbsolute(root.path) ? root.path : join(bundle, root.path)) : '';
  for (const [field, get] of UNSUPPORTED) if (!isEmpty(get(c))) problems.add(field, 'is not supported');
  const p = isObj(c.process) ? c.process : undefined;
  if (!p) problems.add('process', 'expected the process to run');
  const args = p?.args;
  if (!strList(args) || args.length === 0) problems.add('process.args', 'expected a non-empty list of strings');
  if (p?.env !== undefined && !strList(p.env)) problems.add('process.env', 'expected a list of "KEY=value" strings');
  const cwd = typeof p?.cwd === 'string' ? p.cwd : '/';
  if (!posix.isAbsolute(cwd)) problems.add('process.cwd', 'expected an absolute path');
  if (p?.commandLine !== undefined) problems.add('process.commandLine', 'is for Windows');
  let oomScoreAdj: number | undefined;
  if (p?.oomScoreAdj !== undefined) {
    if (typeof p.oomScoreAdj !== 'number' || !Number.isInteger(p.oomScoreAdj) || p.oomScoreAdj < -1000 || p.oomScoreAdj > 1000) problems.add('process.oomScoreAdj', 'expected an integer from -1000 to 1000');
    else oomScoreAdj = p.oomScoreAdj;
  }
  const linux = isObj(c.linux) ? c.linux : {};
  let rootfsPropagation: number | undefined;
  if (linux.rootfsPropagation !== undefined && linux.rootfsPropagation !== '') {
    rootfsPropagation = PROPAGATION[String(linux.rootfsPropagation)];
    if (rootfsPropagation === undefined) problems.add('linux.rootfsPropagation', `"${String(linux.rootfsPropagation)}" is not a propagation (one of ${Object.keys(PROPAGATION).join(', ')})`);
  }
  const masked = linux.maskedPaths ?? [];
  const readonly = linux.readonlyPaths ?? [];
  if (!strList(masked)) problems.add('linux.maskedPaths', 'expected a list of paths');
  if (!strList(readonly)) problems.add('linux.readonlyPaths', 'expected a list of paths');
  if (linux.seccomp !== undefined && !isObj(linux.seccomp)) problems.add('linux.seccomp', 'expected an object');
  const annotations: Record<string, string> = {};
  if (c.annotations !== undefined) {
    if (!isObj(c.annotations) || Object.values(c.annotations).some((x) => typeof x !== 'string')) problems.add('annotations', 'expected string values');
    else Object.assign(annotations, c.annotations);
  }
  const personality = annotations['io.stratoswarm.personality'];
  if (personality !== undefined && !Personality.presets.some((x) => x.name === personality)) {
    problems.add('annotations["io.stratoswarm.personality"]', `unknown personality "${personality}" (one of ${Personality.presets.map((x) => x.name).join(', ')})`);
  }
  evolutionAnnotation(annotations[EVOLUTION_ANNOTATION], problems);
  const restart = annotations['io.stratoswarm.restart'];
  if (restart !== undefined && !(RESTART_POLICIES as readonly string[]).includes(restart.split(':')[0]!)) problems.add('annotations["io.stratoswarm.restart"]', `unknown restart policy "${restart}" (one of ${RESTART_POLICIES.join(', ')})`);
  const hostname = typeof c.hostname === 'string' ? c.hostname : '';
  const joins: JoinNamespaces = {};
  const shareHost = new Set<(typeof SHAREABLE)[number]>();
  const network = namespaces(linux.namespaces ?? [], problems, host, joins, shareHost);
  // runc's rule: a hostname needs a UTS namespace of the container's own.
  if (shareHost.has('uts') && hostname !== '') problems.add('hostname', "setting it needs a uts namespace of the container's own; linux.namespaces has none, and the host's would be renamed");
  const wantsUserns = Array.isArray(linux.namespaces) && linux.namespaces.some((n) => isObj(n) && n.type === 'user');
  // A joined user namespace has its maps already: given ones must be the same.
  const idMaps = joins.user ? joinedUserMaps(linux, joins.user, problems, host) : idMappings(linux, wantsUserns, problems);
  if (idMaps && joins.net) problems.add('linux.namespaces', 'a new user namespace with a joined network namespace is not supported (the network namespace must belong to the user namespace)');
  const { devices, mknods } = deviceList(linux.devices, wantsUserns, problems, host);
  const sysctl: Record<string, string> = {};
  if (linux.sysctl !== undefined) {
    if (!isObj(linux.sysctl)) problems.add('linux.sysctl', 'expected an object');
    else
      for (const [k, v] of Object.entries(linux.sysctl)) {
        const why = sysctlProblem(k, v, network === 'none');
        if (why) problems.add(`linux.sysctl["${k}"]`, why);
        else sysctl[k] = v as string;
      }
  }
  const t: OciTranslation = {
    rootfs,
    readonlyRoot: isObj(root) && root.readonly === true,
    mounts: mounts(c.mounts, problems, host, wantsUserns),
    process: { argv: strList(args) ? args : [], env: strList(p?.env) ? p.env : [], cwd, user: user(p?.user, problems), terminal: p?.terminal === true, oomScoreAdj },
    security: {
      capabilities: capabilities(p?.capabilities, problems, warnings, host),
      noNewPrivileges: p?.noNewPrivileges === true,
      readonlyRoot: isObj(root) && root.readonly === true,
      maskedPaths: strList(masked) ? masked : [],
      readonlyPaths: strList(readonly) ? readonly : [],
      rlimits: rlimits(p?.rlimits, problems),
    },
    seccomp: linux.seccomp,
    hostname,
    network,
    join: joins,
    shareHost: [...shareHost],
    ...(idMaps ? { idMaps } : {}),
    sysctl,
    resources: resources(linux.resources, problems),
    cgroupsPath: cgroupsPath(linux.cgroupsPath, problems),
    devices,
    mknods,
    ...(rootfsPropagation !== undefined ? { rootfsPropagation } : {}),
    hooks: hooks(c.hooks, problems),
    annotations,
    personality,
    restart,
    warnings,
  };
  problems.throwIfAny('invalid config.json');
  return t;
}
