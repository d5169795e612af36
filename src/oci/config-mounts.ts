/**
 * config.json's mounts in the runtime's terms: binds and filesystems with their flags, data
 * and propagation, the cgroup mounts as runc lays them out, and idmapped binds.
 */
import { isAbsolute, posix } from 'node:path';
import type { Problems } from '../errors.js';
import { MS } from '../plan/encode.js';
import type { PlanMount } from '../plan/types.js';
import { idMapText } from './config-linux.js';
import type { HostFacts } from './host.js';

type Json = Record<string, unknown>;

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const strList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

// Mount options that are flags (set, or cleared with the second form); others go to the
// filesystem as data. Propagation is private (the whole tree is made rprivate first).
const FLAG_OPTIONS: Record<string, [number, boolean]> = {
  ro: [MS.RDONLY, true], rw: [MS.RDONLY, false], nosuid: [MS.NOSUID, true], suid: [MS.NOSUID, false],
  nodev: [MS.NODEV, true], dev: [MS.NODEV, false], noexec: [MS.NOEXEC, true], exec: [MS.NOEXEC, false],
  strictatime: [MS.STRICTATIME, true], relatime: [1 << 21, true], noatime: [1024, true], nodiratime: [2048, true],
};
const IGNORED_OPTIONS = new Set(['defaults', 'async']);
const UNSUPPORTED_OPTIONS = new Set(['tmpcopyup', 'copy-symlink']);
/** Propagation a mount (or the rootfs) gets once mounted: the mount(2) flags of each name. */
export const PROPAGATION: Record<string, number> = {
  private: MS.PRIVATE, rprivate: MS.PRIVATE | MS.REC, shared: MS.SHARED, rshared: MS.SHARED | MS.REC,
  slave: MS.SLAVE, rslave: MS.SLAVE | MS.REC, unbindable: MS.UNBINDABLE, runbindable: MS.UNBINDABLE | MS.REC,
};


/**
 * A mount's idmapping: uidMappings and gidMappings (both, each as linux.uidMappings is
 * written), or the idmap/ridmap option alone, which maps through the container's own user
 * namespace. Only a bind can be idmapped here.
 */
function mountIdmap(m: Json, f: string, options: string[], bind: boolean, userns: boolean, problems: Problems): PlanMount['idmap'] {
  const given = m.uidMappings !== undefined || m.gidMappings !== undefined;
  const option = options.includes('idmap') || options.includes('ridmap');
  if (!given && !option) return undefined;
  if (options.includes('idmap') && options.includes('ridmap')) problems.add(`${f}.options`, '"idmap" and "ridmap" together: one is recursive, the other not');
  if (!bind) {
    problems.add(given ? `${f}.uidMappings` : `${f}.options`, 'only a bind mount can be idmapped here (the filesystem of another type is mounted by the container, already in its ids)');
    return undefined;
  }
  const recursive = options.includes('ridmap');
  if (!given) {
    if (!userns) problems.add(`${f}.options`, `"${recursive ? 'ridmap' : 'idmap'}" without uidMappings and gidMappings maps through the container's user namespace, and linux.namespaces has none`);
    return { recursive };
  }
  if (m.uidMappings === undefined || m.gidMappings === undefined) {
    problems.add(m.uidMappings === undefined ? `${f}.uidMappings` : `${f}.gidMappings`, 'an idmapped mount needs both uidMappings and gidMappings');
    return undefined;
  }
  const uid = idMapText(m.uidMappings, `${f}.uidMappings`, problems);
  const gid = idMapText(m.gidMappings, `${f}.gidMappings`, problems);
  return uid && gid ? { maps: { uid: uid.text, gid: gid.text }, recursive } : undefined;
}

export function mounts(v: unknown, problems: Problems, host: HostFacts, userns: boolean): PlanMount[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) {
    problems.add('mounts', 'expected a list');
    return [];
  }
  const out: PlanMount[] = [];
  v.forEach((m: unknown, i) => {
    const f = `mounts[${i}]`;
    if (!isObj(m) || typeof m.destination !== 'string' || !posix.isAbsolute(m.destination)) {
      problems.add(`${f}.destination`, 'expected an absolute path');
      return;
    }
    const options = m.options === undefined ? [] : m.options;
    if (!strList(options)) {
      problems.add(`${f}.options`, 'expected a list of strings');
      return;
    }
    const type = typeof m.type === 'string' ? m.type : '';
    const source = typeof m.source === 'string' ? m.source : type;
    const bind = type === 'bind' || options.includes('bind') || options.includes('rbind');
    let flags = bind && options.includes('rbind') ? MS.REC : 0;
    let propagation: number | undefined;
    const data: string[] = [];
    const idmap = mountIdmap(m, f, options, bind, userns, problems);
    for (const o of options) {
      if (o === 'bind' || o === 'rbind' || o === 'idmap' || o === 'ridmap' || IGNORED_OPTIONS.has(o)) continue;
      if (UNSUPPORTED_OPTIONS.has(o)) problems.add(`${f}.options`, `"${o}" is not supported`);
      else if (PROPAGATION[o] !== undefined) {
        if (propagation !== undefined) problems.add(`${f}.options`, `"${o}": only one propagation can be given`);
        propagation = PROPAGATION[o];
      } else if (FLAG_OPTIONS[o]) flags = FLAG_OPTIONS[o][1] ? flags | FLAG_OPTIONS[o][0] : flags & ~FLAG_OPTIONS[o][0];
      // Filesystem data of a bind (mode=, size=...) is ignored by mount(2) with MS_BIND, as
      // with runc and crun: the bound tree keeps its own filesystem's options.
      else if (!bind) data.push(o);
    }
    const target = posix.normalize(m.destination);
    if (bind) {
      const kind = isAbsolute(source) ? host.pathKind(source) : undefined;
      if (!isAbsolute(source)) problems.add(`${f}.source`, 'a bind mount needs an absolute host path');
      else if (!kind) problems.add(`${f}.source`, `\`${source}\` does not exist`);
      out.push({ kind: 'bind', source, target, fstype: '', data: '', flags: flags | MS.BIND, isFile: kind === 'file', ...(propagation !== undefined ? { propagation } : {}), ...(idmap ? { idmap } : {}) });
    } else if (type === 'cgroup' || type === 'cgroup2') {
      // Inside the container's cgroup namespace the hierarchies show its own cgroup as the
      // root: a tmpfs with each v1 controller, as runc lays /sys/fs/cgroup out.
      out.push({ kind: 'fs', source: 'tmpfs', target, fstype: 'tmpfs', data: 'mode=755', flags: MS.NOSUID | MS.NODEV | MS.NOEXEC, isFile: false });
      for (const h of host.cgroupHierarchies()) {
        out.push({ kind: 'fs', source: h.type, target: `${target}/${h.name}`, fstype: h.type, data: h.data, flags: flags | MS.NOSUID | MS.NODEV | MS.NOEXEC, isFile: false });
      }
    } else if (type === '') {
      problems.add(`${f}.type`, 'expected a filesystem type');
    } else {
      out.push({ kind: 'fs', source, target, fstype: type, data: data.join(','), flags, isFile: false, ...(propagation !== undefined ? { propagation } : {}) });
    }
  });
  return out;
}

