import { RuntimeError } from './errors.js';

/** One observation of a container's resource use, as taken from `stats()`. */
export interface UsageSample {
  timestampMs: number;
  /** Average number of cores used over the sample's interval. */
  cpuCores: number;
  memoryBytes: number;
}

export interface UsageHistoryOptions {
  /** How long until a sample counts half as much as a new one. Default: one hour. */
  halfLifeMs?: number;
}

export interface UsageHistoryJSON {
  version: 1;
  halfLifeMs: number;
  originMs: number;
  latestMs: number;
  count: number;
  cpu: number[];
  memory: number[];
}

// Eight buckets per doubling make each bucket 9 % wide; interpolating inside a bucket
// brings a percentile within a fraction of a percent, except in a partly filled extreme
// bucket, where it can overshoot by up to the bucket's width (the safe direction for a
// limit). Twenty doublings span 1 millicore .. 1,048 cores and 1 MiB .. 1 TiB. A fixed
// bucket count is what makes both add() and a query O(1).
const BUCKETS_PER_DOUBLING = 8;
const DOUBLINGS = 20;
const BUCKETS = BUCKETS_PER_DOUBLING * DOUBLINGS + 1; // bucket 0 holds everything below the base
const CPU_BASE_CORES = 0.001;
const MEMORY_BASE_BYTES = 1024 * 1024;
// Weights grow as 2^(age / half-life) instead of old buckets shrinking, so a sample touches
// one bucket; once the newest weight passes 2^RENORMALISE_AFTER every bucket is scaled back
// down together, which happens once per that many half-lives and so costs O(1) amortised.
const RENORMALISE_AFTER = 64;

function bucketOf(value: number, base: number): number {
  if (!(value >= base)) return 0;
  const i = Math.floor(Math.log2(value / base) * BUCKETS_PER_DOUBLING) + 1;
  return i >= BUCKETS ? BUCKETS - 1 : i;
}

function bucketLow(i: number, base: number): number {
  return i === 0 ? 0 : base * 2 ** ((i - 1) / BUCKETS_PER_DOUBLING);
}

/**
 * Where within the bucket the quantile falls, given the fraction `f` of the bucket's weight
 * below it. Buckets are geometric, so interpolating in log space matches their shape.
 */
function interpolate(i: number, f: number, base: number): number {
  if (i === 0) return base * f;
  const lo = bucketLow(i, base);
  return lo * 2 ** (f / BUCKETS_PER_DOUBLING);
}

/**
 * Walks only the occupied range [lo, hi] of the buckets: a workload's use typically spans a
 * dozen buckets, so a query costs that, not the 161 the layout has room for.
 */
function quantile(buckets: Float64Array, lo: number, hi: number, total: number, q: number, base: number): number | undefined {
  if (!(total > 0) || hi < lo) return undefined;
  if (q >= 0.5) {
    // High percentiles sit in the tail, so walking down from the top touches few buckets.
    const above = (1 - q) * total;
    let acc = 0;
    for (let i = hi; i >= lo; i--) {
      const w = buckets[i]!;
      if (w > 0 && acc + w >= above) return interpolate(i, 1 - (above - acc) / w, base);
      acc += w;
    }
    return interpolate(lo, 0, base);
  }
  const below = q * total;
  let acc = 0;
  for (let i = lo; i <= hi; i++) {
    const w = buckets[i]!;
    if (w > 0 && acc + w >= below) return interpolate(i, (below - acc) / w, base);
    acc += w;
  }
  return interpolate(hi, 1, base);
}

/**
 * A decaying histogram of a container's CPU and memory use. Old samples fade with a fixed
 * half-life, so percentiles follow a workload that changes while still remembering its
 * daily peaks for a while.
 */
export class UsageHistory {
  readonly halfLifeMs: number;
  private readonly cpu = new Float64Array(BUCKETS);
  private readonly memory = new Float64Array(BUCKETS);
  // The occupied bucket range of each histogram (empty: lo > hi).
  private cpuLo = BUCKETS;
  private cpuHi = -1;
  private memLo = BUCKETS;
  private memHi = -1;
  private originMs = Number.NaN;
  private latest = Number.NaN;
  private total = 0;
  private samples = 0;

  constructor(options: UsageHistoryOptions = {}) {
    const h = options.halfLifeMs ?? 3_600_000;
    if (!Number.isFinite(h) || h <= 0) {
      throw new RuntimeError(`usage history half-life must be a positive number of ms, got ${h}`, { code: 'EINVAL' });
    }
    this.halfLifeMs = h;
  }

  add(sample: UsageSample): void {
    const { timestampMs, cpuCores, memoryBytes } = sample;
    if (!Number.isFinite(timestampMs) || !(cpuCores >= 0) || !(memoryBytes >= 0) || !Number.isFinite(cpuCores + memoryBytes)) {
      throw new RuntimeError(
        `invalid usage sample: timestampMs=${timestampMs} cpuCores=${cpuCores} memoryBytes=${memoryBytes}`,
        { code: 'EINVAL' },
      );
    }
    if (Number.isNaN(this.originMs)) this.originMs = timestampMs;
    let exponent = (timestampMs - this.originMs) / this.halfLifeMs;
    if (exponent > RENORMALISE_AFTER) {
      this.shiftOrigin(Math.floor(exponent));
      exponent = (timestampMs - this.originMs) / this.halfLifeMs;
    }
    const w = 2 ** exponent;
    const c = bucketOf(cpuCores, CPU_BASE_CORES);
    const m = bucketOf(memoryBytes, MEMORY_BASE_BYTES);
    this.cpu[c]! += w;
    this.memory[m]! += w;
    if (c < this.cpuLo) this.cpuLo = c;
    if (c > this.cpuHi) this.cpuHi = c;
    if (m < this.memLo) this.memLo = m;
    if (m > this.memHi) this.memHi = m;
    this.total += w;
    this.samples++;
    if (!(timestampMs <= this.latest)) this.latest = timestampMs;
  }

  private shiftOrigin(halfLives: number): void {
    const scale = 2 ** -halfLives;
    for (let i = 0; i < BUCKETS; i++) {
      this.cpu[i]! *= scale;
      this.memory[i]! *= scale;
    }
    this.total *= scale;
    this.originMs += halfLives * this.halfLifeMs;
  }

  /** CPU use (cores) that a fraction `q` of the (decay-weighted) samples stayed at or under. */
  cpuPercentile(q: number): number | undefined {
    return quantile(this.cpu, this.cpuLo, this.cpuHi, this.total, clampQ(q), CPU_BASE_CORES);
  }

  /** Memory use (bytes) that a fraction `q` of the (decay-weighted) samples stayed at or under. */
  memoryPercentile(q: number): number | undefined {
    return quantile(this.memory, this.memLo, this.memHi, this.total, clampQ(q), MEMORY_BASE_BYTES);
  }

  /**
   * How many samples' worth of evidence the history holds at `nowMs` (default: the newest
   * sample's time): every sample counts 1 when new and fades with the half-life.
   */
  effectiveSamples(nowMs?: number): number {
    if (this.samples === 0) return 0;
    const at = nowMs ?? this.latest;
    return this.total * 2 ** (-(at - this.originMs) / this.halfLifeMs);
  }

  /** Samples added since creation, undecayed. */
  get count(): number {
    return this.samples;
  }

  /** Timestamp of the newest sample, or undefined when there is none. */
  get latestMs(): number | undefined {
    return this.samples === 0 ? undefined : this.latest;
  }

  toJSON(): UsageHistoryJSON {
    return {
      version: 1,
      halfLifeMs: this.halfLifeMs,
      originMs: this.originMs,
      latestMs: this.latest,
      count: this.samples,
      cpu: Array.from(this.cpu),
      memory: Array.from(this.memory),
    };
  }

  static fromJSON(json: UsageHistoryJSON): UsageHistory {
    if (json?.version !== 1 || json.cpu?.length !== BUCKETS || json.memory?.length !== BUCKETS) {
      throw new RuntimeError('unsupported usage history snapshot', { code: 'EINVAL' });
    }
    const h = new UsageHistory({ halfLifeMs: json.halfLifeMs });
    h.cpu.set(json.cpu);
    h.memory.set(json.memory);
    // JSON turns NaN into null, which is how an empty history round-trips.
    h.originMs = json.originMs ?? Number.NaN;
    h.latest = json.latestMs ?? Number.NaN;
    h.samples = json.count;
    h.total = h.cpu.reduce((a, b) => a + b, 0);
    for (let i = 0; i < BUCKETS; i++) {
      if (h.cpu[i]! > 0) {
        h.cpuLo = Math.min(h.cpuLo, i);
        h.cpuHi = i;
      }
      if (h.memory[i]! > 0) {
        h.memLo = Math.min(h.memLo, i);
        h.memHi = i;
      }
    }
    return h;
  }
}

function clampQ(q: number): number {
  return q < 0 ? 0 : q > 1 ? 1 : q;
}
