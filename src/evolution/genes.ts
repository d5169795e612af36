/** Gene name → value. Known genes: cpuLimit (cores), memoryLimit (bytes), cpuWeight (1..10000). */
export type Genome = Record<string, number>;

export interface GeneBounds {
  min: number;
  max: number;
  /**
   * 'log' (default when min > 0): mutations multiply, which suits quantities whose useful
   * range spans orders of magnitude. 'linear': mutations add a fraction of max − min.
   */
  scale?: 'log' | 'linear';
  /** Round proposals to integers (default for memoryLimit, cpuWeight and pidsLimit). */
  integer?: boolean;
}

export interface GeneSpec {
  name: string;
  min: number;
  max: number;
  log: boolean;
  integer: boolean;
  lo: number; // bounds in search coordinates
  hi: number;
}

const INTEGER_GENES = new Set(['memoryLimit', 'cpuWeight', 'pidsLimit']);
/** The genes a container evolves when the configuration names none. */
export const DEFAULT_GENES = ['cpuLimit', 'memoryLimit', 'cpuWeight'] as const;

export function specOf(name: string, b: GeneBounds): GeneSpec {
  const log = (b.scale ?? (b.min > 0 ? 'log' : 'linear')) === 'log';
  return {
    name,
    min: b.min,
    max: b.max,
    log,
    integer: b.integer ?? INTEGER_GENES.has(name),
    lo: log ? Math.log(b.min) : 0,
    hi: log ? Math.log(b.max) : 1,
  };
}

/** Genes the kernel rejects or misbehaves on at zero, and cpu.weight's own range. */
const POSITIVE_GENES = new Set(['cpuLimit', 'memoryLimit', 'cpuWeight', 'pidsLimit']);
const CPU_WEIGHT_MIN = 1;
const CPU_WEIGHT_MAX = 10_000;

export function boundsProblem(name: string, b: GeneBounds | undefined): string | undefined {
  if (!b || typeof b !== 'object') return 'expected { min, max }';
  const { min, max, scale } = b;
  if (typeof min !== 'number' || typeof max !== 'number' || !Number.isFinite(min) || !Number.isFinite(max)) {
    return `expected finite min and max, got min=${JSON.stringify(min)} max=${JSON.stringify(max)}`;
  }
  if (!(min < max)) return `expected min < max, got min=${min} max=${max}`;
  if (POSITIVE_GENES.has(name) && !(min > 0)) return `${name} needs min > 0, got ${min}`;
  if (name === 'cpuWeight' && (min < CPU_WEIGHT_MIN || max > CPU_WEIGHT_MAX)) {
    return `cpuWeight must stay within [${CPU_WEIGHT_MIN}, ${CPU_WEIGHT_MAX}], got [${min}, ${max}]`;
  }
  if (scale !== undefined && scale !== 'log' && scale !== 'linear') return `expected scale "log" or "linear", got ${JSON.stringify(scale)}`;
  if ((scale ?? (min > 0 ? 'log' : 'linear')) === 'log' && !(min > 0)) return `a log-scale gene needs min > 0, got ${min}`;
  if (b.integer && Math.ceil(min) > Math.floor(max)) return `no integer lies in [${min}, ${max}]`;
  return undefined;
}

export function toCoord(g: GeneSpec, v: number): number {
  if (g.log && !(v > 0)) return g.lo;
  const c = g.log ? Math.log(v) : (v - g.min) / (g.max - g.min);
  return Math.min(g.hi, Math.max(g.lo, c));
}

export function fromCoord(g: GeneSpec, c: number, exact?: number): number {
  let v = exact ?? (g.log ? Math.exp(c) : g.min + c * (g.max - g.min));
  if (g.integer) v = Math.round(v);
  // Rounding and exp() may step just outside the bounds; the bounds are a promise.
  const lo = g.integer ? Math.ceil(g.min) : g.min;
  const hi = g.integer ? Math.floor(g.max) : g.max;
  return Math.min(hi, Math.max(lo, v));
}

/**
 * Bounds for the default genes when the configuration sets none: a quarter to four times
 * the value the container starts with, so an unconfigured search cannot run away.
 */
export function defaultBounds(initial: Genome): Record<string, GeneBounds> {
  const out: Record<string, GeneBounds> = {};
  const c = initial.cpuLimit;
  if (typeof c === 'number' && c > 0) out.cpuLimit = { min: Math.max(0.01, c / 4), max: Math.max(0.02, c * 4) };
  const m = initial.memoryLimit;
  if (typeof m === 'number' && m > 0) out.memoryLimit = { min: Math.max(4 * 1024 * 1024, Math.floor(m / 4)), max: Math.max(8 * 1024 * 1024, m * 4) };
  const w = initial.cpuWeight;
  if (typeof w === 'number' && w > 0) out.cpuWeight = { min: Math.max(1, Math.floor(w / 4)), max: Math.min(10_000, Math.max(2, w * 4)) };
  return out;
}
