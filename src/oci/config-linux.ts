/**
 * config.json's linux.resources (cgroup limits, block I/O throttles, device rules) and its id
 * mappings (linux.uidMappings, gidMappings), in the runtime's terms; config.ts translates the rest.
 */
import { RuntimeError, type Problems } from '../errors.js';
import { CPU_PERIOD_US, resourceProblems, type DeviceRule, type Resources } from '../isolation/resources.js';
import type { OciTranslation } from './config.js';

type Json = Record<string, unknown>;

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The config.json field each v1-only resource comes from: a v2 host's refusal names it. */
export const V1_ONLY_FIELDS: Readonly<Partial<Record<keyof Resources, string>>> = {
  memorySwappiness: 'linux.resources.memory.swappiness',
  memoryOomKillDisable: 'linux.resources.memory.disableOOMKiller',
  memoryKernelTcp: 'linux.resources.memory.kernelTCP',
  memoryKernel: 'linux.resources.memory.kernel',
  cpuRtPeriod: 'linux.resources.cpu.realtimePeriod',
  cpuRtRuntime: 'linux.resources.cpu.realtimeRuntime',
};

/** A cgroup refusal of a v1-only resource, named by its config.json field. */
export function resourceField(e: unknown): unknown {
  if (!(e instanceof RuntimeError) || e.step !== 'cgroup') return e;
  if (e.code === 'EUNSUPPORTED') for (const [k, field] of Object.entries(V1_ONLY_FIELDS)) if (e.message.includes(`${k}: `)) return e.wrap(field!);
  // The settings whose cgroup errors (a missing file, a refused write) name their own field.
  for (const [k, field] of Object.entries(OWN_FIELDS)) if (e.message.includes(`${k}: `) || e.message.includes(`${k}[`)) return e.wrap(field);
  return e;
}

const OWN_FIELDS: Readonly<Record<string, string>> = {
  blockIoWeightDevice: 'linux.resources.blockIO.weightDevice',
  blockIoWeight: 'linux.resources.blockIO.weight',
  unified: 'linux.resources.unified',
};

export function resources(v: unknown, problems: Problems): Resources {
  const r: Resources = {};
  if (v === undefined) return r;
  if (!isObj(v)) {
    problems.add('linux.resources', 'expected an object');
    return r;
  }
  const f = 'linux.resources';
  const mem = v.memory;
  if (isObj(mem)) {
    if (typeof mem.limit === 'number' && mem.limit > 0) r.memoryLimit = mem.limit;
    if (typeof mem.reservation === 'number' && mem.reservation > 0) r.memoryReservation = mem.reservation;
    if (typeof mem.swap === 'number' && mem.swap > 0) r.memorySwap = mem.swap;
    // v1-only limits: written on a v1 memory hierarchy, refused by name on v2 (at create).
    const bytes = (k: string): number | undefined => {
      const x = mem[k];
      // -1 (no limit) is the kernel's default for a new cgroup: nothing to write.
      if (x === undefined || x === null || x === 0 || x === -1) return undefined;
      if (Number.isInteger(x) && (x as number) > 0) return x as number;
      problems.add(`${f}.memory.${k}`, `expected whole bytes or -1, got ${JSON.stringify(x)}`);
      return undefined;
    };
    const kernel = bytes('kernel');
    if (kernel !== undefined) r.memoryKernel = kernel;
    const kernelTcp = bytes('kernelTCP');
    if (kernelTcp !== undefined) r.memoryKernelTcp = kernelTcp;
    if (mem.swappiness !== undefined && mem.swappiness !== null) {
      if (Number.isInteger(mem.swappiness) && (mem.swappiness as number) >= 0 && (mem.swappiness as number) <= 100) r.memorySwappiness = mem.swappiness as number;
      else problems.add(`${f}.memory.swappiness`, `expected a whole number 0..100, got ${JSON.stringify(mem.swappiness)}`);
    }
    if (mem.disableOOMKiller !== undefined && mem.disableOOMKiller !== null) {
      if (typeof mem.disableOOMKiller === 'boolean') r.memoryOomKillDisable = mem.disableOOMKiller;
      else problems.add(`${f}.memory.disableOOMKiller`, `expected true or false, got ${JSON.stringify(mem.disableOOMKiller)}`);
    }
    for (const k of ['useHierarchy', 'checkBeforeUpdate']) {
      if (mem[k] !== undefined && mem[k] !== false) problems.add(`${f}.memory.${k}`, 'is not supported');
    }
  }
  const cpu = v.cpu;
  if (isObj(cpu)) {
    // Quota and period are written as given: the period with the quota, or alone.
    const period = typeof cpu.period === 'number' && cpu.period > 0 ? cpu.period : undefined;
    if (period !== undefined) r.cpuPeriod = period;
    if (typeof cpu.quota === 'number' && cpu.quota > 0) r.cpuLimit = cpu.quota / (period ?? CPU_PERIOD_US);
    if (typeof cpu.shares === 'number' && cpu.shares > 0) r.cpuWeight = Math.max(1, Math.min(10000, Math.round((cpu.shares * 100) / 1024)));
    if (typeof cpu.cpus === 'string' && cpu.cpus) r.cpusetCpus = cpu.cpus;
    if (typeof cpu.mems === 'string' && cpu.mems) r.cpusetMems = cpu.mems;
    for (const [k, to] of [['realtimePeriod', 'cpuRtPeriod'], ['realtimeRuntime', 'cpuRtRuntime']] as const) {
      const x = cpu[k];
      if (x === undefined || x === null || x === 0) continue;
      if (Number.isInteger(x) && (x as number) > 0) r[to] = x as number;
      else problems.add(`${f}.cpu.${k}`, `expected whole µs > 0, got ${JSON.stringify(x)}`);
    }
    for (const k of ['idle', 'burst']) if (cpu[k] !== undefined && cpu[k] !== 0) problems.add(`${f}.cpu.${k}`, 'is not supported');
  }
  if (isObj(v.pids) && typeof v.pids.limit === 'number' && v.pids.limit > 0) r.pidsLimit = v.pids.limit;
  if (v.devices !== undefined) r.devices = deviceRules(v.devices, problems);
  // The hugetlb controller's limits, per page size; a size the host lacks fails at create, named.
  if (Array.isArray(v.hugepageLimits) && v.hugepageLimits.length > 0) {
    if (v.hugepageLimits.every((h) => isObj(h) && typeof h.pageSize === 'string' && typeof h.limit === 'number')) r.hugetlb = v.hugepageLimits.map((h) => ({ pageSize: h.pageSize as string, limit: h.limit as number }));
    else problems.add(`${f}.hugepageLimits`, 'expected a list of { pageSize, limit }');
  }
  if (v.blockIO !== undefined) {
    const b = blockIo(v.blockIO, problems);
    if (b.limits.length > 0) r.blockIo = b.limits;
    if (b.weight !== undefined) r.blockIoWeight = b.weight;
    if (b.weightDevice.length > 0) r.blockIoWeightDevice = b.weightDevice;
  }
  // unified: cgroup v2 files by name; the keys are checked as the library checks them, named here.
  if (v.unified !== undefined && v.unified !== null && !(isObj(v.unified) && Object.keys(v.unified).length === 0)) {
    const own = resourceProblems({ unified: v.unified });
    for (const p of own.list) problems.add(`${f}.${p.field}`, p.problem);
    if (own.empty) r.unified = { ...(v.unified as Record<string, string>) };
  }
  for (const k of ['network', 'rdma']) {
    const x = v[k];
    const empty = x === undefined || (Array.isArray(x) && x.length === 0) || (isObj(x) && Object.keys(x).length === 0);
    if (!empty) problems.add(`${f}.${k}`, 'is not supported');
  }
  return r;
}

const THROTTLES = [
  ['throttleReadBpsDevice', 'readBps'],
  ['throttleWriteBpsDevice', 'writeBps'],
  ['throttleReadIOPSDevice', 'readIops'],
  ['throttleWriteIOPSDevice', 'writeIops'],
] as const;

/** BFQ's weight range; a weight of 0 is no weight, as runc reads it. */
const MAX_IO_WEIGHT = 1000;
const LEAF_GONE = 'is not supported: leaf weights were the CFQ scheduler’s, which left the kernel in Linux 5.0 (BFQ has none); weight and weightDevice are';

/**
 * linux.resources.blockIO: the throttles, per device (blkio.throttle.* on v1, io.max on v2),
 * and the proportional weights, which the BFQ scheduler applies (blkio.bfq.weight[_device]
 * on v1, io.bfq.weight on v2). Leaf weights are refused by name.
 */
function blockIo(
  v: unknown,
  problems: Problems,
): { limits: NonNullable<Resources['blockIo']>; weight: number | undefined; weightDevice: NonNullable<Resources['blockIoWeightDevice']> } {
  const f = 'linux.resources.blockIO';
  const out = { limits: [] as NonNullable<Resources['blockIo']>, weight: undefined as number | undefined, weightDevice: [] as NonNullable<Resources['blockIoWeightDevice']> };
  if (!isObj(v)) {
    problems.add(f, 'expected an object');
    return out;
  }
  const weight = (x: unknown, at: string): number | undefined => {
    if (x === undefined || x === null || x === 0) return undefined;
    if (Number.isInteger(x) && (x as number) > 0 && (x as number) <= MAX_IO_WEIGHT) return x as number;
    problems.add(at, `expected a whole number 1..${MAX_IO_WEIGHT} (BFQ's range), got ${JSON.stringify(x)}`);
    return undefined;
  };
  out.weight = weight(v.weight, `${f}.weight`);
  if (v.leafWeight !== undefined && v.leafWeight !== null && v.leafWeight !== 0) problems.add(`${f}.leafWeight`, LEAF_GONE);
  if (v.weightDevice !== undefined && v.weightDevice !== null) {
    if (!Array.isArray(v.weightDevice)) problems.add(`${f}.weightDevice`, 'expected a list of { major, minor, weight }');
    else
      v.weightDevice.forEach((e: unknown, i) => {
        const at = `${f}.weightDevice[${i}]`;
        if (!isObj(e) || !Number.isInteger(e.major) || !Number.isInteger(e.minor) || (e.major as number) < 0 || (e.minor as number) < 0) {
          problems.add(at, 'expected { major, minor, weight } with whole numbers');
          return;
        }
        if (e.leafWeight !== undefined && e.leafWeight !== null && e.leafWeight !== 0) problems.add(`${at}.leafWeight`, LEAF_GONE);
        const w = weight(e.weight, `${at}.weight`);
        if (w !== undefined) out.weightDevice.push({ device: `${e.major as number}:${e.minor as number}`, weight: w });
      });
  }
  const byDevice = new Map<string, NonNullable<Resources['blockIo']>[number]>();
  for (const [key, limit] of THROTTLES) {
    const list = v[key];
    if (list === undefined) continue;
    if (!Array.isArray(list)) {
      problems.add(`${f}.${key}`, 'expected a list of { major, minor, rate }');
      continue;
    }
    list.forEach((e: unknown, i) => {
      const at = `${f}.${key}[${i}]`;
      if (!isObj(e) || !Number.isInteger(e.major) || !Number.isInteger(e.minor) || (e.major as number) < 0 || (e.minor as number) < 0) {
        problems.add(at, 'expected { major, minor, rate } with whole numbers');
        return;
      }
      if (!Number.isInteger(e.rate) || (e.rate as number) < 0) {
        problems.add(`${at}.rate`, `expected a whole number ≥ 0, got ${JSON.stringify(e.rate)}`);
        return;
      }
      const device = `${e.major as number}:${e.minor as number}`;
      const entry = byDevice.get(device) ?? { device };
      // A rate of 0 is no limit, as runc writes it.
      if ((e.rate as number) > 0) entry[limit] = e.rate as number;
      byDevice.set(device, entry);
    });
  }
  out.limits = [...byDevice.values()].filter((e) => THROTTLES.some(([, k]) => e[k] !== undefined));
  return out;
}

function deviceRules(v: unknown, problems: Problems): DeviceRule[] {
  if (!Array.isArray(v)) {
    problems.add('linux.resources.devices', 'expected a list');
    return [];
  }
  return v.flatMap((d: unknown, i) => {
    if (!isObj(d) || typeof d.allow !== 'boolean') {
      problems.add(`linux.resources.devices[${i}].allow`, 'expected true or false');
      return [];
    }
    const type = (d.type ?? 'a') as DeviceRule['type'];
    const access = typeof d.access === 'string' && d.access ? d.access : 'rwm';
    const rule: DeviceRule = { allow: d.allow, type, access };
    if (typeof d.major === 'number' && d.major >= 0) rule.major = d.major;
    if (typeof d.minor === 'number' && d.minor >= 0) rule.minor = d.minor;
    return [rule];
  });
}

/**
 * One list of { containerID, hostID, size } as uid_map/gid_map text: a line each (at most
 * 340, the kernel's limit), ranges not overlapping on either side. `size`: the highest
 * container id mapped, plus one. Undefined when a problem was found (added, named `f`).
 */
export function idMapText(list: unknown, f: string, problems: Problems): { text: string; size: number } | undefined {
  if (!Array.isArray(list) || list.length === 0 || list.length > 340) {
    problems.add(f, 'expected a list of 1 to 340 { containerID, hostID, size }');
    return undefined;
  }
  const before = problems.list.length;
  const seen: [number, number, number][] = [];
  let text = '';
  let size = 0;
  list.forEach((m: unknown, i) => {
    const at = `${f}[${i}]`;
    const ok = (x: unknown): x is number => Number.isInteger(x) && (x as number) >= 0 && (x as number) <= 0xffffffff;
    if (!isObj(m) || !ok(m.containerID) || !ok(m.hostID) || !ok(m.size) || m.size === 0) {
      problems.add(at, 'expected { containerID, hostID, size } with whole numbers, size ≥ 1');
      return;
    }
    const [c, h, n] = [m.containerID, m.hostID, m.size];
    if (c + n > 0x100000000 || h + n > 0x100000000) return problems.add(at, 'runs past the 32-bit id space');
    for (const [c2, h2, n2] of seen) {
      if (c < c2 + n2 && c2 < c + n) return problems.add(at, 'overlaps another mapping\'s container ids');
      if (h < h2 + n2 && h2 < h + n) return problems.add(at, 'overlaps another mapping\'s host ids');
    }
    seen.push([c, h, n]);
    text += `${c} ${h} ${n}\n`;
    size = Math.max(size, c + n);
  });
  return problems.list.length === before ? { text, size } : undefined;
}

/**
 * linux.uidMappings and gidMappings for a new user namespace (idMapText's rules). Mappings
 * without a user namespace, or a user namespace without both, are errors.
 */
export function idMappings(linux: Json, userns: boolean, problems: Problems): OciTranslation['idMaps'] {
  const out: Record<'uid' | 'gid', string> = { uid: '', gid: '' };
  let size = 0;
  for (const [key, which] of [['uidMappings', 'uid'], ['gidMappings', 'gid']] as const) {
    const f = `linux.${key}`;
    const list = linux[key];
    if (list === undefined || (Array.isArray(list) && list.length === 0)) {
      if (userns) problems.add(f, 'a user namespace needs its id mappings');
      continue;
    }
    if (!userns) {
      problems.add(f, 'given without a user namespace in linux.namespaces');
      continue;
    }
    const m = idMapText(list, f, problems);
    if (!m) continue;
    out[which] = m.text;
    size = Math.max(size, m.size);
  }
  return userns && out.uid && out.gid ? { uid: out.uid, gid: out.gid, size } : undefined;
}
