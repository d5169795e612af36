/** The cgroup v1 backend: one hierarchy per controller (or per group of co-mounted controllers). */
import { RuntimeError } from '../errors.js';
import { flatKeyed, parseLimit, type Backend, type CgroupStats, type DirReader, type ParentPlan } from './backend.js';
import { parseV1DeviceLine, v1DeviceLine } from './devices.js';
import type { Write } from './mapping.js';

const DEVICE_FILES = new Set(['devices.allow', 'devices.deny']);

/** Sums the Read and Write lines of blkio.throttle.io_service{d,_bytes}_recursive ("8:0 Read 4096"). */
function blkioSums(text: string): { read: number; write: number } {
  let read = 0;
  let write = 0;
  for (const line of text.split('\n')) {
    const [, op, n] = line.split(' ');
    if (op === 'Read') read += Number(n);
    else if (op === 'Write') write += Number(n);
  }
  return { read, write };
}

/** The value for `key` in a "major:minor value" file, if it has a line for it. */
function keyedValue(text: string, key: string): string | undefined {
  for (const line of text.split('\n')) {
    const sp = line.indexOf(' ');
    if (sp > 0 && line.slice(0, sp) === key) return line.slice(sp + 1).trim();
  }
  return undefined;
}

export const V1: Backend = {
  version: 1,

  prepareParent({ kernel, owned, above, controllers }: ParentPlan) {
    if (controllers.includes('cpuset')) {
      // A new v1 cpuset starts with no cpus and no mems, and a task cannot join it until both
      // are set (ENOSPC). Each directory we own copies its parent's sets; clone_children on the
      // runtime's parent makes the kernel do the copy for every container, saving two writes
      // per create.
      let up = above;
      for (const dir of owned) {
        for (const file of ['cpuset.cpus', 'cpuset.mems']) {
          if (kernel.readFile(`${dir}/${file}`).trim() === '') kernel.cgroupWrite(`${dir}/${file}`, kernel.readFile(`${up}/${file}`).trim());
        }
        up = dir;
      }
      const parent = owned[owned.length - 1]!;
      if (kernel.readFile(`${parent}/cgroup.clone_children`).trim() !== '1') kernel.cgroupWrite(`${parent}/cgroup.clone_children`, '1');
    }
    return [];
  },

  snapshotFile(w: Write) {
    return DEVICE_FILES.has(w.file) ? 'devices.list' : w.file;
  },

  restore(w: Write, previous: string) {
    if (DEVICE_FILES.has(w.file)) {
      // devices.list shows "a *:* rwm" for allow-all, else the allowed exceptions. (An allow-all
      // cgroup with deny exceptions lists those denies the same way; the runtime never makes one.)
      const rules = previous.split('\n').map(parseV1DeviceLine).filter((r) => r !== undefined);
      const writes: Write[] = rules.some((r) => r.type === 'a')
        ? [{ file: 'devices.allow', value: 'a' }]
        : [{ file: 'devices.deny', value: 'a' }, ...rules.map((r) => ({ file: 'devices.allow', value: v1DeviceLine(r) }))];
      return { group: 'devices', writes };
    }
    if (w.key !== undefined) {
      // Writing 0 removes a throttle rule (block/blk-throttle.c).
      return { writes: [{ file: w.file, value: `${w.key} ${keyedValue(previous, w.key) ?? '0'}`, key: w.key }] };
    }
    const prev = previous.trim();
    // memory.oom_control reads as lines ("oom_kill_disable 0", "under_oom 0", …); takes the flag.
    if (w.file === 'memory.oom_control') return { writes: [{ file: w.file, value: /oom_kill_disable (\d)/.exec(prev)?.[1] ?? '0' }] };
    return { writes: [{ file: w.file, value: parseLimit(prev) === Infinity && /^\d+$/.test(prev) ? '-1' : prev }] };
  },

  readUsage(controller, dir: DirReader) {
    if (controller === 'cpuacct') return Number(dir.read('cpuacct.usage'));
    if (controller === 'memory') return Number(dir.read('memory.usage_in_bytes'));
    return undefined;
  },

  readStats(controller, dir: DirReader, into: CgroupStats) {
    switch (controller) {
      case 'cpu': {
        const s = flatKeyed(dir.read('cpu.stat'));
        const cpu = (into.cpu ??= { usageNs: 0, periods: 0, throttledPeriods: 0, throttledNs: 0 });
        cpu.periods = s.get('nr_periods') ?? 0;
        cpu.throttledPeriods = s.get('nr_throttled') ?? 0;
        cpu.throttledNs = s.get('throttled_time') ?? 0;
        break;
      }
      case 'cpuacct': {
        const cpu = (into.cpu ??= { usageNs: 0, periods: 0, throttledPeriods: 0, throttledNs: 0 });
        cpu.usageNs = Number(dir.read('cpuacct.usage'));
        break;
      }
      case 'memory': {
        const current = Number(dir.read('memory.usage_in_bytes'));
        into.memory = {
          currentBytes: current,
          peakBytes: Number(dir.tryRead('memory.max_usage_in_bytes') ?? current),
          limitBytes: parseLimit(dir.read('memory.limit_in_bytes')),
          oomKills: flatKeyed(dir.read('memory.oom_control')).get('oom_kill') ?? 0,
        };
        break;
      }
      case 'pids':
        into.pids = { current: Number(dir.read('pids.current')), limit: parseLimit(dir.read('pids.max')) };
        break;
      case 'blkio': {
        const bytes = blkioSums(dir.read('blkio.throttle.io_service_bytes_recursive'));
        const ops = blkioSums(dir.read('blkio.throttle.io_serviced_recursive'));
        into.blockIo = { readBytes: bytes.read, writeBytes: bytes.write, readOps: ops.read, writeOps: ops.write };
        break;
      }
      default:
        break;
    }
  },

  freezeWrite(frozen: boolean) {
    return { file: 'freezer.state', value: frozen ? 'FROZEN' : 'THAWED' };
  },

  isFrozen(dir: DirReader) {
    return dir.read('freezer.state').trim() === 'FROZEN';
  },

  oomKills(dir: DirReader) {
    const n = flatKeyed(dir.read('memory.oom_control')).get('oom_kill');
    if (n === undefined) {
      // The field arrived in Linux 4.13; before it, v1 does not count OOM kills at all.
      throw new RuntimeError('memory.oom_control has no oom_kill field (Linux < 4.13)', { code: 'EUNSUPPORTED', step: 'cgroup' });
    }
    return n;
  },
};
