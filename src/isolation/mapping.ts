/**
 * The one table from resource limits to cgroup files, for v1 and v2. The driver writes what
 * this table says, and the README renders it (renderMappingTable), so the two cannot drift.
 */
import type { Controller } from './layout.js';
import { v1DeviceLine } from './devices.js';
import { CPU_PERIOD_US, UNLIMITED, type DeviceRule, type Resources } from './resources.js';

/** One write to a file in the container's directory of one hierarchy. */
export interface Write {
  file: string;
  value: string;
  /** For files holding one line per device (blkio.throttle.*, io.max): the device written. */
  key?: string;
  /** Only for BPF_DEVICE_PROGRAM: the rules the v2 device program enforces. */
  rules?: readonly DeviceRule[];
}

/** Not a file: v2 has no devices file, the driver attaches an eBPF program instead. */
export const BPF_DEVICE_PROGRAM = '<BPF_CGROUP_DEVICE program>';

export interface MappingSide {
  /** File names as the README shows them. */
  files: string;
  /** How the value is computed, as the README shows it. */
  conversion: string;
  /** The file exists only with some kernel options (swap accounting, a huge page size). */
  mayBeMissing?: boolean;
  /** The file may be absent (an option this kernel lacks): then nothing is written, and no error. */
  skipIfMissing?: boolean;
  /** Why the file may be missing, for the error when it is (default: swap accounting, huge page sizes). */
  missingBecause?: string;
  /** A hint for a failed write, by the errno the kernel gave (the setting's own cause, said plainly). */
  writeHint?(errno: string): string | undefined;
  /** Why this hierarchy version cannot apply the value, if it cannot (then nothing is written). */
  unsupported?(r: Resources): string | undefined;
  writes(r: Resources): Write[];
}

export interface ResourceMapping {
  resource: keyof Resources;
  controller: Controller;
  v1: MappingSide;
  v2: MappingSide;
}

const inf = (v: number) => v === UNLIMITED;

/**
 * cpu.shares from a v2 weight, as systemd converts CPUWeight: the defaults map onto each other
 * (100 ↔ 1024). The OCI/runc formula (shares 2..262144 ↔ weight 1..10000 linearly) maps the
 * default 1024 shares to weight 39, which would make an unlimited neighbour 2.5× heavier.
 */
export function cpuWeightToShares(weight: number): number {
  return Math.min(262_144, Math.max(2, Math.round((weight * 1024) / 100)));
}

export function cpuQuotaUs(cores: number, period = CPU_PERIOD_US): number {
  return Math.round(cores * period);
}

const periodOf = (r: Resources) => r.cpuPeriod ?? CPU_PERIOD_US;

/** For a v1-only setting: the v2 side refuses it, naming the setting. */
function v1Only(file: string, isSet: (r: Resources) => boolean = () => true, controller = 'memory'): MappingSide {
  return {
    files: '—',
    conversion: `refused (v2 has no ${file})`,
    unsupported: (r) => (isSet(r) ? `cgroup v2 has no ${file} (the ${controller} controller here is v2)` : undefined),
    writes: () => [],
  };
}

const V1_THROTTLE = [
  ['readBps', 'blkio.throttle.read_bps_device'],
  ['writeBps', 'blkio.throttle.write_bps_device'],
  ['readIops', 'blkio.throttle.read_iops_device'],
  ['writeIops', 'blkio.throttle.write_iops_device'],
] as const;
const V2_IO_KEYS = [
  ['readBps', 'rbps'],
  ['writeBps', 'wbps'],
  ['readIops', 'riops'],
  ['writeIops', 'wiops'],
] as const;

const BFQ_MISSING = 'it comes with the BFQ I/O scheduler: modprobe bfq, on a kernel built with CONFIG_BFQ_GROUP_IOSCHED';
const BFQ_DEVICE_HINT = (errno: string) =>
  errno === 'EOPNOTSUPP' || errno === 'ENOTSUP' ? 'the device does not use the BFQ I/O scheduler (echo bfq > /sys/block/<disk>/queue/scheduler)' : errno === 'ENODEV' ? 'no such block device' : undefined;

export const RESOURCE_MAP: readonly ResourceMapping[] = [
  {
    resource: 'cpuLimit',
    controller: 'cpu',
    v1: {
      files: 'cpu.cfs_period_us, cpu.cfs_quota_us',
      conversion: `period = cpuPeriod (${CPU_PERIOD_US} if not given); quota = round(cpuLimit × period), -1 if UNLIMITED`,
      writes: (r) => [
        { file: 'cpu.cfs_period_us', value: String(periodOf(r)) },
        { file: 'cpu.cfs_quota_us', value: inf(r.cpuLimit!) ? '-1' : String(cpuQuotaUs(r.cpuLimit!, periodOf(r))) },
      ],
    },
    v2: {
      files: 'cpu.max',
      conversion: `"round(cpuLimit × period) period", "max period"; period = cpuPeriod (${CPU_PERIOD_US} if not given)`,
      writes: (r) => [{ file: 'cpu.max', value: `${inf(r.cpuLimit!) ? 'max' : cpuQuotaUs(r.cpuLimit!, periodOf(r))} ${periodOf(r)}` }],
    },
  },
  {
    // With cpuLimit, its row writes the period; alone, the period is written with no quota.
    resource: 'cpuPeriod',
    controller: 'cpu',
    v1: {
      files: 'cpu.cfs_period_us',
      conversion: 'µs as given (written with cpuLimit when both are given)',
      writes: (r) => (r.cpuLimit !== undefined ? [] : [{ file: 'cpu.cfs_period_us', value: String(r.cpuPeriod) }]),
    },
    v2: {
      files: 'cpu.max',
      conversion: '"max cpuPeriod" when no cpuLimit is given',
      writes: (r) => (r.cpuLimit !== undefined ? [] : [{ file: 'cpu.max', value: `max ${r.cpuPeriod}` }]),
    },
  },
  {
    // The period first: the kernel checks the run time against it.
    resource: 'cpuRtPeriod',
    controller: 'cpu',
    v1: {
      files: 'cpu.rt_period_us',
      conversion: 'µs as given (needs CONFIG_RT_GROUP_SCHED)',
      mayBeMissing: true,
      writes: (r) => [{ file: 'cpu.rt_period_us', value: String(r.cpuRtPeriod) }],
    },
    v2: v1Only('real-time group scheduling', () => true, 'cpu'),
  },
  {
    resource: 'cpuRtRuntime',
    controller: 'cpu',
    v1: {
      files: 'cpu.rt_runtime_us',
      conversion: 'µs as given, at most what the parent has (needs CONFIG_RT_GROUP_SCHED)',
      mayBeMissing: true,
      writes: (r) => [{ file: 'cpu.rt_runtime_us', value: String(r.cpuRtRuntime) }],
    },
    v2: v1Only('real-time group scheduling', () => true, 'cpu'),
  },
  {
    resource: 'cpuWeight',
    controller: 'cpu',
    v1: {
      files: 'cpu.shares',
      conversion: 'clamp(round(cpuWeight × 1024 / 100), 2, 262144) (systemd’s mapping: 100 ↔ 1024)',
      writes: (r) => [{ file: 'cpu.shares', value: String(cpuWeightToShares(r.cpuWeight!)) }],
    },
    v2: { files: 'cpu.weight', conversion: 'cpuWeight', writes: (r) => [{ file: 'cpu.weight', value: String(r.cpuWeight) }] },
  },
  {
    resource: 'memoryLimit',
    controller: 'memory',
    v1: {
      files: 'memory.limit_in_bytes',
      conversion: 'bytes, -1 if UNLIMITED',
      writes: (r) => [{ file: 'memory.limit_in_bytes', value: inf(r.memoryLimit!) ? '-1' : String(r.memoryLimit) }],
    },
    v2: {
      files: 'memory.max',
      conversion: 'bytes, "max" if UNLIMITED',
      writes: (r) => [{ file: 'memory.max', value: inf(r.memoryLimit!) ? 'max' : String(r.memoryLimit) }],
    },
  },
  {
    resource: 'memorySwap',
    controller: 'memory',
    v1: {
      files: 'memory.memsw.limit_in_bytes',
      conversion: 'bytes of memory + swap, -1 if UNLIMITED (needs swap accounting)',
      mayBeMissing: true,
      writes: (r) => [{ file: 'memory.memsw.limit_in_bytes', value: inf(r.memorySwap!) ? '-1' : String(r.memorySwap) }],
    },
    v2: {
      files: 'memory.swap.max',
      conversion: 'memorySwap − memoryLimit (swap only), "max" if UNLIMITED',
      mayBeMissing: true,
      writes: (r) => [{ file: 'memory.swap.max', value: inf(r.memorySwap!) ? 'max' : String(r.memorySwap! - r.memoryLimit!) }],
    },
  },
  {
    resource: 'memoryKernel',
    controller: 'memory',
    v1: {
      files: 'memory.kmem.limit_in_bytes',
      conversion: 'bytes, -1 if UNLIMITED; skipped where the file is absent (Linux 5.16+ accepts and ignores it)',
      skipIfMissing: true,
      writes: (r) => [{ file: 'memory.kmem.limit_in_bytes', value: inf(r.memoryKernel!) ? '-1' : String(r.memoryKernel) }],
    },
    v2: v1Only('kernel memory limit'),
  },
  {
    resource: 'memoryKernelTcp',
    controller: 'memory',
    v1: {
      files: 'memory.kmem.tcp.limit_in_bytes',
      conversion: 'bytes, -1 if UNLIMITED',
      writes: (r) => [{ file: 'memory.kmem.tcp.limit_in_bytes', value: inf(r.memoryKernelTcp!) ? '-1' : String(r.memoryKernelTcp) }],
    },
    v2: v1Only('kernel TCP memory limit'),
  },
  {
    resource: 'memorySwappiness',
    controller: 'memory',
    v1: { files: 'memory.swappiness', conversion: '0..100 as given', writes: (r) => [{ file: 'memory.swappiness', value: String(r.memorySwappiness) }] },
    v2: v1Only('memory.swappiness'),
  },
  {
    resource: 'memoryOomKillDisable',
    controller: 'memory',
    v1: { files: 'memory.oom_control', conversion: '1 if true, 0 if false', writes: (r) => [{ file: 'memory.oom_control', value: r.memoryOomKillDisable ? '1' : '0' }] },
    v2: v1Only('switch to disable the OOM killer', (r) => r.memoryOomKillDisable === true),
  },
  {
    resource: 'memoryReservation',
    controller: 'memory',
    v1: {
      files: 'memory.soft_limit_in_bytes',
      conversion: 'bytes, -1 if UNLIMITED',
      writes: (r) => [{ file: 'memory.soft_limit_in_bytes', value: inf(r.memoryReservation!) ? '-1' : String(r.memoryReservation) }],
    },
    v2: {
      files: 'memory.low',
      // memory.low is protection, not a cap: "max" would shield everything the container uses,
      // so no reservation is 0, the kernel's default.
      conversion: 'bytes, 0 (no protection) if UNLIMITED',
      writes: (r) => [{ file: 'memory.low', value: inf(r.memoryReservation!) ? '0' : String(r.memoryReservation) }],
    },
  },
  {
    resource: 'pidsLimit',
    controller: 'pids',
    v1: {
      files: 'pids.max',
      conversion: 'count, "max" if UNLIMITED',
      writes: (r) => [{ file: 'pids.max', value: inf(r.pidsLimit!) ? 'max' : String(r.pidsLimit) }],
    },
    v2: {
      files: 'pids.max',
      conversion: 'count, "max" if UNLIMITED',
      writes: (r) => [{ file: 'pids.max', value: inf(r.pidsLimit!) ? 'max' : String(r.pidsLimit) }],
    },
  },
  {
    resource: 'cpusetCpus',
    controller: 'cpuset',
    v1: { files: 'cpuset.cpus', conversion: 'the list as given', writes: (r) => [{ file: 'cpuset.cpus', value: r.cpusetCpus! }] },
    v2: { files: 'cpuset.cpus', conversion: 'the list as given', writes: (r) => [{ file: 'cpuset.cpus', value: r.cpusetCpus! }] },
  },
  {
    resource: 'cpusetMems',
    controller: 'cpuset',
    v1: { files: 'cpuset.mems', conversion: 'the list as given', writes: (r) => [{ file: 'cpuset.mems', value: r.cpusetMems! }] },
    v2: { files: 'cpuset.mems', conversion: 'the list as given', writes: (r) => [{ file: 'cpuset.mems', value: r.cpusetMems! }] },
  },
  {
    resource: 'blockIo',
    controller: 'blkio',
    v1: {
      files: 'blkio.throttle.{read,write}_{bps,iops}_device',
      conversion: '"major:minor value" per limit given, 0 (no limit) if UNLIMITED',
      writes: (r) =>
        r.blockIo!.flatMap((b) =>
          V1_THROTTLE.filter(([k]) => b[k] !== undefined).map(([k, file]) => ({
            file,
            value: `${b.device} ${inf(b[k]!) ? 0 : b[k]}`,
            key: b.device,
          })),
        ),
    },
    v2: {
      files: 'io.max',
      conversion: '"major:minor rbps=… wbps=… riops=… wiops=…" with the limits given, "max" if UNLIMITED',
      writes: (r) =>
        r.blockIo!.map((b) => ({
          file: 'io.max',
          value: [b.device, ...V2_IO_KEYS.filter(([k]) => b[k] !== undefined).map(([k, key]) => `${key}=${inf(b[k]!) ? 'max' : b[k]}`)].join(' '),
          key: b.device,
        })),
    },
  },
  {
    resource: 'blockIoWeight',
    controller: 'blkio',
    v1: {
      files: 'blkio.bfq.weight',
      conversion: '1..1000 as given (BFQ’s weight; CFQ’s blkio.weight is gone since Linux 5.0)',
      mayBeMissing: true,
      missingBecause: BFQ_MISSING,
      writes: (r) => [{ file: 'blkio.bfq.weight', value: String(r.blockIoWeight) }],
    },
    v2: {
      files: 'io.bfq.weight',
      conversion: '"default weight"',
      mayBeMissing: true,
      missingBecause: BFQ_MISSING,
      writes: (r) => [{ file: 'io.bfq.weight', value: `default ${r.blockIoWeight}` }],
    },
  },
  {
    resource: 'blockIoWeightDevice',
    controller: 'blkio',
    v1: {
      files: 'blkio.bfq.weight_device',
      conversion: '"major:minor weight" per device (the device must use BFQ)',
      mayBeMissing: true,
      missingBecause: BFQ_MISSING,
      writeHint: BFQ_DEVICE_HINT,
      writes: (r) => r.blockIoWeightDevice!.map((d) => ({ file: 'blkio.bfq.weight_device', value: `${d.device} ${d.weight}`, key: d.device })),
    },
    v2: {
      files: 'io.bfq.weight',
      conversion: '"major:minor weight" per device (the device must use BFQ)',
      mayBeMissing: true,
      missingBecause: BFQ_MISSING,
      writeHint: BFQ_DEVICE_HINT,
      writes: (r) => r.blockIoWeightDevice!.map((d) => ({ file: 'io.bfq.weight', value: `${d.device} ${d.weight}`, key: d.device })),
    },
  },
  {
    resource: 'hugetlb',
    controller: 'hugetlb',
    v1: {
      files: 'hugetlb.<pageSize>.limit_in_bytes',
      conversion: 'bytes, -1 if UNLIMITED',
      mayBeMissing: true,
      writes: (r) => r.hugetlb!.map((h) => ({ file: `hugetlb.${h.pageSize}.limit_in_bytes`, value: inf(h.limit) ? '-1' : String(h.limit) })),
    },
    v2: {
      files: 'hugetlb.<pageSize>.max',
      conversion: 'bytes, "max" if UNLIMITED',
      mayBeMissing: true,
      writes: (r) => r.hugetlb!.map((h) => ({ file: `hugetlb.${h.pageSize}.max`, value: inf(h.limit) ? 'max' : String(h.limit) })),
    },
  },
  // Last on purpose: a v2 device program cannot be read back, so nothing may fail after it.
  {
    resource: 'devices',
    controller: 'devices',
    v1: {
      files: 'devices.deny, devices.allow',
      conversion: 'deny "a", then each rule: "type major:minor access" to devices.allow (or devices.deny)',
      writes: (r) => [
        { file: 'devices.deny', value: 'a' },
        ...r.devices!.map((d) => ({ file: d.allow ? 'devices.allow' : 'devices.deny', value: v1DeviceLine(d) })),
      ],
    },
    v2: {
      files: 'eBPF program (BPF_CGROUP_DEVICE)',
      conversion: 'default deny; the last rule matching type, major, minor and access decides',
      writes: (r) => [{ file: BPF_DEVICE_PROGRAM, value: `${r.devices!.length} rules`, rules: r.devices! }],
    },
  },
];

/** The mapping as a markdown table, for the README. */
export function renderMappingTable(map: readonly ResourceMapping[] = RESOURCE_MAP): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  const rows = map.map((m) =>
    `| \`${m.resource}\` | ${m.controller} | \`${cell(m.v1.files)}\` | ${cell(m.v1.conversion)} | \`${cell(m.v2.files)}\` | ${cell(m.v2.conversion)} |`,
  );
  return [
    '| Resource | Controller (v1 name) | cgroup v1 file | v1 value | cgroup v2 file | v2 value |',
    '|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}
