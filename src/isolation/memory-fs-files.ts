/**
 * What the in-memory cgroup filesystem (memory-fs.ts) knows of the kernel's files: the ones a
 * new cgroup gets, per controller, and how the keyed files (throttles, io.max, BFQ weights)
 * read after a write.
 */
import type { Controller } from './layout.js';

const UNLIMITED_V1 = '9223372036854771712';

export const V1_FILES: Record<Controller, Record<string, string>> = {
  cpu: { 'cpu.cfs_period_us': '100000', 'cpu.cfs_quota_us': '-1', 'cpu.shares': '1024', 'cpu.stat': 'nr_periods 0\nnr_throttled 0\nthrottled_time 0\n' },
  cpuacct: { 'cpuacct.usage': '0' },
  cpuset: { 'cpuset.cpus': '', 'cpuset.mems': '' },
  memory: {
    'memory.limit_in_bytes': UNLIMITED_V1,
    'memory.memsw.limit_in_bytes': UNLIMITED_V1,
    'memory.soft_limit_in_bytes': UNLIMITED_V1,
    'memory.usage_in_bytes': '0',
    'memory.max_usage_in_bytes': '0',
    'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 0\n',
    'memory.swappiness': '60',
    'memory.kmem.limit_in_bytes': UNLIMITED_V1,
    'memory.kmem.tcp.limit_in_bytes': UNLIMITED_V1,
  },
  pids: { 'pids.max': 'max', 'pids.current': '0' },
  blkio: {
    'blkio.throttle.read_bps_device': '',
    'blkio.throttle.write_bps_device': '',
    'blkio.throttle.read_iops_device': '',
    'blkio.throttle.write_iops_device': '',
    'blkio.throttle.io_service_bytes_recursive': 'Total 0\n',
    'blkio.throttle.io_serviced_recursive': 'Total 0\n',
    'blkio.bfq.weight': '100',
    'blkio.bfq.weight_device': 'default 100\n',
  },
  devices: { 'devices.allow': '', 'devices.deny': '', 'devices.list': 'a *:* rwm\n' },
  freezer: { 'freezer.state': 'THAWED' },
  hugetlb: { 'hugetlb.2MB.limit_in_bytes': UNLIMITED_V1, 'hugetlb.1GB.limit_in_bytes': UNLIMITED_V1 },
};

export const V2_FILES: Record<string, Record<string, string>> = {
  cpu: { 'cpu.max': 'max 100000', 'cpu.weight': '100' },
  cpuset: { 'cpuset.cpus': '', 'cpuset.mems': '' },
  memory: {
    'memory.max': 'max',
    'memory.swap.max': 'max',
    'memory.low': '0',
    'memory.high': 'max',
    'memory.current': '0',
    'memory.peak': '0',
    'memory.events': 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n',
  },
  pids: { 'pids.max': 'max', 'pids.current': '0' },
  io: { 'io.max': '', 'io.stat': '', 'io.bfq.weight': 'default 100\n' },
  hugetlb: { 'hugetlb.2MB.max': 'max', 'hugetlb.1GB.max': 'max' },
};

const BFQ_WEIGHTS = /^(blkio\.bfq\.weight_device|io\.bfq\.weight)$/;
const KEYED = /^(blkio\.throttle\.(read|write)_(bps|iops)_device|io\.max)$/;
const lines = (text: string[]) => text.map((l) => `${l}\n`).join('');

/**
 * The content of keyed file `name` after `value` is written over `previous`, or undefined
 * for a file that is not keyed (its content is then the value, or the caller's to model).
 */
export function keyedContent(name: string, value: string, previous: string | undefined): string | undefined {
  if (name === 'blkio.bfq.weight') return value.trim();
  if (BFQ_WEIGHTS.test(name)) {
    // "default N" first, then "major:minor N" per device; N 0 removes a device's weight.
    const [first, second] = value.trim().split(/\s+/);
    const have = (previous ?? 'default 100\n').split('\n').filter(Boolean);
    if (second === undefined || first === 'default') have[0] = `default ${second ?? first}`;
    else {
      const rest = have.slice(1).filter((l) => !l.startsWith(`${first} `));
      have.splice(1, have.length - 1, ...rest, ...(second === '0' ? [] : [`${first} ${second}`]));
    }
    return lines(have);
  }
  if (!KEYED.test(name)) return undefined;
  const key = value.split(' ')[0]!;
  const kept = (previous ?? '').split('\n').filter((l) => l !== '' && !l.startsWith(`${key} `));
  const rest = value.slice(key.length + 1);
  // The kernel drops a throttle rule set to 0 and shows io.max keys merged into one line.
  if (name.startsWith('blkio') && rest === '0') return lines(kept);
  if (name !== 'io.max') return lines([...kept, value]);
  const prev = (previous ?? '').split('\n').find((l) => l.startsWith(`${key} `));
  const merged = new Map((prev ?? `${key} rbps=max wbps=max riops=max wiops=max`).split(' ').slice(1).map((kv) => kv.split('=') as [string, string]));
  for (const kv of rest.split(' ')) merged.set(...(kv.split('=') as [string, string]));
  if ([...merged.values()].every((v) => v === 'max')) return lines(kept);
  return lines([...kept, `${key} ${[...merged].map(([k, v]) => `${k}=${v}`).join(' ')}`]);
}
