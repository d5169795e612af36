/**
 * CDI spec files (Container Device Interface, versions 0.3.0 to 1.x): parsing (JSON, or YAML
 * with the `yaml` package) and validation. A spec names a device kind `vendor/class`, its
 * devices, and for each the container edits a runtime makes when the device is asked for;
 * edits at the spec's top level apply once whenever any of its devices is. Every problem is
 * reported with the field's path, as `devices[1].containerEdits.deviceNodes[0].path`.
 */
import { parse as parseYaml } from 'yaml';
import { ConfigError, Problems } from '../../errors.js';

export interface CdiDeviceNode {
  /** Where the node appears in the container. */
  path: string;
  /** The host node it is bound from; defaults to `path`. */
  hostPath?: string | undefined;
  /** 'c' character, 'b' block, 'p' fifo; read from the host node when absent. */
  type?: 'c' | 'b' | 'p' | undefined;
  major?: number | undefined;
  minor?: number | undefined;
  fileMode?: number | undefined;
  /** Device-cgroup access, a subset of "rwm"; "rwm" when absent. */
  permissions?: string | undefined;
  uid?: number | undefined;
  gid?: number | undefined;
}

export interface CdiMount {
  hostPath: string;
  containerPath: string;
  type?: string | undefined;
  options?: string[] | undefined;
}

export const CDI_HOOK_NAMES = ['createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'] as const;
export type CdiHookName = (typeof CDI_HOOK_NAMES)[number];

export interface CdiHook {
  hookName: CdiHookName;
  path: string;
  /** argv, argv[0] included, as in OCI hooks. */
  args?: string[] | undefined;
  env?: string[] | undefined;
  /** Seconds. */
  timeout?: number | undefined;
}

/** Intel RDT (resctrl): the class of service the container joins, and that class's schemata. */
export interface CdiIntelRdt {
  closID?: string | undefined;
  l3CacheSchema?: string | undefined;
  memBwSchema?: string | undefined;
  schemata?: string[] | undefined;
  enableMonitoring?: boolean | undefined;
}

/** A host network interface moved into the container's network namespace under `name`. */
export interface CdiNetDevice {
  hostInterfaceName: string;
  name: string;
}

export interface CdiEdits {
  env?: string[] | undefined;
  intelRdt?: CdiIntelRdt | undefined;
  netDevices?: CdiNetDevice[] | undefined;
  deviceNodes?: CdiDeviceNode[] | undefined;
  mounts?: CdiMount[] | undefined;
  hooks?: CdiHook[] | undefined;
  additionalGids?: number[] | undefined;
}

export interface CdiDevice {
  name: string;
  annotations?: Record<string, string> | undefined;
  containerEdits: CdiEdits;
}

export interface CdiSpec {
  cdiVersion: string;
  kind: string;
  annotations?: Record<string, string> | undefined;
  devices: CdiDevice[];
  containerEdits?: CdiEdits | undefined;
  /** The file it was read from. */
  file: string;
}

const VENDOR = /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/;
const CLASS = /^[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?$/;
const DEVICE_NAME = /^[A-Za-z0-9]([A-Za-z0-9_.:-]*[A-Za-z0-9])?$/;

/** Whether `kind` is a valid `vendor/class`. */
export function validKind(kind: string): boolean {
  const [vendor, cls, ...rest] = kind.split('/');
  return rest.length === 0 && VENDOR.test(vendor ?? '') && CLASS.test(cls ?? '');
}

export function validDeviceName(name: string): boolean {
  return DEVICE_NAME.test(name);
}

/** A fully-qualified device name, `vendor.com/class=name`, split; undefined when it is not one. */
export function parseQualifiedName(qualified: string): { kind: string; name: string } | undefined {
  const eq = qualified.indexOf('=');
  if (eq < 0) return undefined;
  const kind = qualified.slice(0, eq);
  const name = qualified.slice(eq + 1);
  return validKind(kind) && validDeviceName(name) ? { kind, name } : undefined;
}

/** The spec versions this runtime reads: 0.3.0 (the first with today's layout) up to 1.x. */
export function supportedVersion(v: string): boolean {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(v);
  if (!m) return false;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return (major === 0 && minor >= 3) || major === 1;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function strings(p: Problems, field: string, v: unknown, check?: (s: string, f: string) => void): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) {
    p.add(field, 'expected a list of strings');
    return undefined;
  }
  v.forEach((s, i) => {
    if (typeof s !== 'string') p.add(`${field}[${i}]`, `expected a string, got ${JSON.stringify(s)}`);
    else check?.(s, `${field}[${i}]`);
  });
  return v as string[];
}

function int(p: Problems, field: string, v: unknown, min = 0, max = 2 ** 32 - 1): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    p.add(field, `expected an integer ${min}..${max}, got ${JSON.stringify(v)}`);
    return undefined;
  }
  return v;
}

function absPath(p: Problems, field: string, v: unknown, required: boolean): string | undefined {
  if (v === undefined || v === null || v === '') {
    if (required) p.add(field, 'required');
    return undefined;
  }
  if (typeof v !== 'string' || !v.startsWith('/') || v.includes('\0')) {
    p.add(field, `expected an absolute path, got ${JSON.stringify(v)}`);
    return undefined;
  }
  return v;
}

function edits(p: Problems, field: string, v: unknown): CdiEdits | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) {
    p.add(field, 'expected an object');
    return undefined;
  }
  const env = strings(p, `${field}.env`, v.env, (s, f) => {
    if (!/^[^=\0]+=/.test(s)) p.add(f, `expected "NAME=value", got ${JSON.stringify(s)}`);
  });
  const list = (key: string): Obj[] | undefined => {
    const l = v[key];
    if (l === undefined || l === null) return undefined;
    if (!Array.isArray(l) || !l.every(isObj)) {
      p.add(`${field}.${key}`, 'expected a list of objects');
      return undefined;
    }
    return l;
  };
  const deviceNodes = list('deviceNodes')?.map((d, i): CdiDeviceNode => {
    const f = `${field}.deviceNodes[${i}]`;
    let type = d.type as string | undefined;
    if (type === 'u') type = 'c'; // unbuffered character device, as OCI spells it
    if (type !== undefined && type !== 'c' && type !== 'b' && type !== 'p') p.add(`${f}.type`, `expected "c", "b" or "p", got ${JSON.stringify(d.type)}`);
    if (d.permissions !== undefined && (typeof d.permissions !== 'string' || !/^[rwm]{1,3}$/.test(d.permissions))) p.add(`${f}.permissions`, `expected a subset of "rwm", got ${JSON.stringify(d.permissions)}`);
    return {
      path: absPath(p, `${f}.path`, d.path, true) ?? '',
      hostPath: absPath(p, `${f}.hostPath`, d.hostPath, false),
      type: type as CdiDeviceNode['type'],
      major: int(p, `${f}.major`, d.major),
      minor: int(p, `${f}.minor`, d.minor),
      fileMode: int(p, `${f}.fileMode`, d.fileMode, 0, 0o7777),
      permissions: d.permissions as string | undefined,
      uid: int(p, `${f}.uid`, d.uid),
      gid: int(p, `${f}.gid`, d.gid),
    };
  });
  const mounts = list('mounts')?.map((m, i): CdiMount => {
    const f = `${field}.mounts[${i}]`;
    if (m.type !== undefined && typeof m.type !== 'string') p.add(`${f}.type`, 'expected a string');
    return {
      hostPath: absPath(p, `${f}.hostPath`, m.hostPath, true) ?? '',
      containerPath: absPath(p, `${f}.containerPath`, m.containerPath, true) ?? '',
      type: m.type as string | undefined,
      options: strings(p, `${f}.options`, m.options),
    };
  });
  const hooks = list('hooks')?.map((h, i): CdiHook => {
    const f = `${field}.hooks[${i}]`;
    if (!CDI_HOOK_NAMES.includes(h.hookName as CdiHookName)) p.add(`${f}.hookName`, `expected one of ${CDI_HOOK_NAMES.join(', ')}, got ${JSON.stringify(h.hookName)}`);
    return {
      hookName: h.hookName as CdiHookName,
      path: absPath(p, `${f}.path`, h.path, true) ?? '',
      args: strings(p, `${f}.args`, h.args),
      env: strings(p, `${f}.env`, h.env),
      timeout: int(p, `${f}.timeout`, h.timeout, 1, 86_400),
    };
  });
  let additionalGids: number[] | undefined;
  if (v.additionalGids !== undefined && v.additionalGids !== null) {
    if (!Array.isArray(v.additionalGids)) p.add(`${field}.additionalGids`, 'expected a list of group ids');
    else additionalGids = v.additionalGids.map((g, i) => int(p, `${field}.additionalGids[${i}]`, g) ?? 0);
  }
  const ifname = (f: string, s: unknown): string => {
    // The kernel's limit: 15 bytes, no "/", no whitespace, not "." or "..".
    if (typeof s !== 'string' || !/^[^/\s:]{1,15}$/.test(s) || s === '.' || s === '..') p.add(f, `expected a network interface name (1 to 15 characters, no "/", ":" or space), got ${JSON.stringify(s)}`);
    return s as string;
  };
  const netDevices = list('netDevices')?.map((n, i): CdiNetDevice => ({
    hostInterfaceName: ifname(`${field}.netDevices[${i}].hostInterfaceName`, n.hostInterfaceName),
    name: ifname(`${field}.netDevices[${i}].name`, n.name),
  }));
  let intelRdt: CdiIntelRdt | undefined;
  if (v.intelRdt !== undefined && v.intelRdt !== null) {
    const r = v.intelRdt;
    const f = `${field}.intelRdt`;
    if (!isObj(r)) p.add(f, 'expected an object');
    else {
      const str = (k: string) => {
        if (r[k] !== undefined && typeof r[k] !== 'string') p.add(`${f}.${k}`, 'expected a string');
        return r[k] as string | undefined;
      };
      const closID = str('closID');
      if (closID !== undefined && (!/^[A-Za-z0-9_.-]{1,64}$/.test(closID) || closID === '.' || closID === '..')) p.add(`${f}.closID`, `expected a resctrl group name, got ${JSON.stringify(closID)}`);
      if (r.enableMonitoring !== undefined && typeof r.enableMonitoring !== 'boolean') p.add(`${f}.enableMonitoring`, 'expected true or false');
      intelRdt = { closID, l3CacheSchema: str('l3CacheSchema'), memBwSchema: str('memBwSchema'), schemata: strings(p, `${f}.schemata`, r.schemata), enableMonitoring: r.enableMonitoring as boolean | undefined };
    }
  }
  return { env, deviceNodes, mounts, hooks, additionalGids, ...(netDevices ? { netDevices } : {}), ...(intelRdt ? { intelRdt } : {}) };
}

function annotations(p: Problems, field: string, v: unknown): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v) || !Object.values(v).every((s) => typeof s === 'string')) {
    p.add(field, 'expected a map of strings');
    return undefined;
  }
  return v as Record<string, string>;
}

/** Validates a parsed spec document; throws a ConfigError naming the file and every bad field. */
export function validateSpec(doc: unknown, file: string): CdiSpec {
  const p = new Problems();
  if (!isObj(doc)) {
    p.add('(document)', 'expected an object');
    p.throwIfAny(`CDI spec ${file}`);
  }
  const d = doc as Obj;
  if (typeof d.cdiVersion !== 'string') p.add('cdiVersion', 'required');
  else if (!supportedVersion(d.cdiVersion)) p.add('cdiVersion', `version ${d.cdiVersion} is not supported (0.3.0 to 1.x are)`);
  if (typeof d.kind !== 'string' || !validKind(d.kind)) p.add('kind', `expected "vendor.com/class", got ${JSON.stringify(d.kind)}`);
  const containerEdits = edits(p, 'containerEdits', d.containerEdits);
  const devices: CdiDevice[] = [];
  if (!Array.isArray(d.devices) || d.devices.length === 0) p.add('devices', 'expected a non-empty list');
  else {
    const seen = new Set<string>();
    d.devices.forEach((dev: unknown, i) => {
      const f = `devices[${i}]`;
      if (!isObj(dev)) return p.add(f, 'expected an object');
      if (typeof dev.name !== 'string' || !validDeviceName(dev.name)) p.add(`${f}.name`, `expected a device name (letters, digits, "_.:-"), got ${JSON.stringify(dev.name)}`);
      else if (seen.has(dev.name)) p.add(`${f}.name`, `"${dev.name}" is defined twice`);
      else seen.add(dev.name);
      if (dev.containerEdits === undefined) p.add(`${f}.containerEdits`, 'required');
      devices.push({ name: dev.name as string, annotations: annotations(p, `${f}.annotations`, dev.annotations), containerEdits: edits(p, `${f}.containerEdits`, dev.containerEdits) ?? {} });
    });
  }
  const ann = annotations(p, 'annotations', d.annotations);
  p.throwIfAny(`CDI spec ${file}`);
  return { cdiVersion: d.cdiVersion as string, kind: d.kind as string, annotations: ann, devices, containerEdits, file };
}

/** Parses a spec file's text: YAML for .yaml/.yml, JSON otherwise (YAML reads JSON too). */
export function parseSpec(text: string, file: string): CdiSpec {
  let doc: unknown;
  try {
    doc = /\.ya?ml$/i.test(file) ? parseYaml(text, { prettyErrors: true }) : JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`CDI spec ${file}`, [{ field: '(document)', problem: `not valid ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'}: ${(e as Error).message.split('\n')[0]}` }]);
  }
  return validateSpec(doc, file);
}
