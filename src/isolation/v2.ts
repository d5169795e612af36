/** The cgroup v2 backend: one tree; controllers reach a child only through subtree_control. */
import { RuntimeError } from '../errors.js';
import { flatKeyed, parseLimit, type Backend, type CgroupStats, type DirReader, type ParentPlan } from './backend.js';
import { V2_NAME, type Controller } from './layout.js';
import { BPF_DEVICE_PROGRAM, type Write } from './mapping.js';

/** Sums one key over every device line of io.stat ("8:0 rbytes=4096 wbytes=0 rios=1 wios=0 ..."). */
function ioStatSums(text: string): { rbytes: number; wbytes: number; rios: number; wios: number } {
  const sums = { rbytes: 0, wbytes: 0, rios: 0, wios: 0 };
  for (const line of text.split('\n')) {
    for (const kv of line.split(' ').slice(1)) {
      const eq = kv.indexOf('=');
      const k = kv.slice(0, eq) as keyof typeof sums;
      if (k in sums) sums[k] += Number(kv.slice(eq + 1));
    }
  }
  return sums;
}

export const V2: Backend = {
  version: 2,

  prepareParent({ kernel, owned, controllers, writableAncestors }: ParentPlan) {
    const want = [...new Set(controllers.map((c) => V2_NAME[c]).filter((n): n is string => n !== null))];
    let missing = new Set<string>();
    // The kernel offers a child only the controllers its parent lists in cgroup.subtree_control,
    // and a directory can enable only what its own cgroup.controllers lists: walk top-down.
    for (const dir of [...writableAncestors, ...owned]) {
      const available = new Set(kernel.readFile(`${dir}/cgroup.controllers`).trim().split(/\s+/).filter(Boolean));
      const enabled = new Set(kernel.readFile(`${dir}/cgroup.subtree_control`).trim().split(/\s+/).filter(Boolean));
      const add = want.filter((c) => available.has(c) && !enabled.has(c) && !missing.has(c));
      if (add.length > 0) kernel.cgroupWrite(`${dir}/cgroup.subtree_control`, add.map((c) => `+${c}`).join(' '));
      missing = new Set(want.filter((c) => missing.has(c) || !available.has(c)));
    }
    return controllers.filter((c) => {
      const n = V2_NAME[c];
      return n !== null && missing.has(n);
    });
  },

  snapshotFile(w: Write) {
    return w.file;
  },

  restore(w: Write, previous: string) {
    if (w.file === BPF_DEVICE_PROGRAM) return { writes: [] }; // applied last, never undone
    if (w.key !== undefined) {
      const line = previous.split('\n').find((l) => l.startsWith(`${w.key} `));
      // No line: io.max had no limits there; io.bfq.weight had no weight of its own (0 removes it).
      const none = w.file === 'io.max' ? `${w.key} rbps=max wbps=max riops=max wiops=max` : `${w.key} 0`;
      return { writes: [{ file: w.file, value: line?.trim() ?? none, key: w.key }] };
    }
    // io.bfq.weight reads as "default N" and then the per-device lines: the first line is the weight.
    if (w.file === 'io.bfq.weight') return { writes: [{ file: w.file, value: previous.split('\n')[0]!.trim() }] };
    return { writes: [{ file: w.file, value: previous.trim() }] };
  },

  readUsage(controller: Controller, dir: DirReader) {
    if (controller === 'cpu') return (flatKeyed(dir.read('cpu.stat')).get('usage_usec') ?? 0) * 1000;
    if (controller === 'memory') return Number(dir.read('memory.current'));
    return undefined;
  },

  readStats(controller: Controller, dir: DirReader, into: CgroupStats) {
    switch (controller) {
      case 'cpu':
      case 'cpuacct': {
        // cpu.stat's usage lines are core (always there); the throttling lines need the cpu controller.
        const s = flatKeyed(dir.read('cpu.stat'));
        const cpu = (into.cpu ??= { usageNs: 0, periods: 0, throttledPeriods: 0, throttledNs: 0 });
        cpu.usageNs = (s.get('usage_usec') ?? 0) * 1000;
        if (controller === 'cpu') {
          cpu.periods = s.get('nr_periods') ?? 0;
          cpu.throttledPeriods = s.get('nr_throttled') ?? 0;
          cpu.throttledNs = (s.get('throttled_usec') ?? 0) * 1000;
        }
        break;
      }
      case 'memory': {
        const current = Number(dir.read('memory.current'));
        into.memory = {
          currentBytes: current,
          peakBytes: Number(dir.tryRead('memory.peak') ?? current), // memory.peak: Linux 5.19+
          limitBytes: parseLimit(dir.read('memory.max')),
          oomKills: flatKeyed(dir.read('memory.events')).get('oom_kill') ?? 0,
        };
        break;
      }
      case 'pids':
        into.pids = { current: Number(dir.read('pids.current')), limit: parseLimit(dir.read('pids.max')) };
        break;
      case 'blkio': {
        const s = ioStatSums(dir.read('io.stat'));
        into.blockIo = { readBytes: s.rbytes, writeBytes: s.wbytes, readOps: s.rios, writeOps: s.wios };
        break;
      }
      default:
        break;
    }
  },

  freezeWrite(frozen: boolean) {
    return { file: 'cgroup.freeze', value: frozen ? '1' : '0' };
  },

  isFrozen(dir: DirReader) {
    return flatKeyed(dir.read('cgroup.events')).get('frozen') === 1;
  },

  oomKills(dir: DirReader) {
    const n = flatKeyed(dir.read('memory.events')).get('oom_kill');
    if (n === undefined) {
      throw new RuntimeError('memory.events has no oom_kill field (Linux < 4.13)', { code: 'EUNSUPPORTED', step: 'cgroup' });
    }
    return n;
  },
};
