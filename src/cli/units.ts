/**
 * Docker's spellings of sizes, CPU counts, GPU requests and times, parsed into the numbers
 * the library takes, and the numbers printed back for people.
 */
import { UsageError } from './errors.js';
import { MIG_PROFILE } from '../gpu/mig.js';

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/**
 * "512m", "1g", "1.5G", "64MiB", "1048576" → bytes. Units are binary, as in docker's
 * RAMInBytes: k = 1024, m = 1024², g = 1024³ (an optional "i" and "b" may follow).
 */
export function parseBytes(text: string, flag = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*$/i.exec(text);
  if (!m || (m[2] === '' && m[3]!.toLowerCase() === 'ib')) {
    throw new UsageError(`${flag}: expected a size like 512m or 1g, got "${text}"`);
  }
  const unit = (m[2] || (m[3] ? 'b' : '')).toLowerCase();
  return Math.round(Number(m[1]) * BYTE_UNITS[unit]!);
}

/** "1.5" → 1.5 cores. */
export function parseCpus(text: string, flag = '--cpus'): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n <= 0) throw new UsageError(`${flag}: expected a positive number of CPUs, got "${text}"`);
  return n;
}

export function parseInteger(text: string, flag: string, min = 0): number {
  const n = Number(text);
  if (!/^\s*-?\d+\s*$/.test(text) || !Number.isSafeInteger(n) || n < min) throw new UsageError(`${flag}: expected an integer ≥ ${min}, got "${text}"`);
  return n;
}

export type GpuRequest = { all: true } | { count: number } | { devices: number[] } | { mig: { count: number; profile?: string } };

/**
 * docker's --gpus: "all", "2", "count=2", "device=0,1" (quotes around the value allowed), and
 * MIG instances: "mig=2" (any profile), "mig=1g.10gb" (one of that profile), "mig=2:1g.10gb".
 */
export function parseGpus(text: string): GpuRequest {
  const t = text.trim().replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1');
  if (t === 'all' || t === 'count=all') return { all: true };
  const count = /^(?:count=)?(\d+)$/.exec(t);
  if (count) return { count: Number(count[1]) };
  const mig = /^mig=(?:(\d+)(?::(.+))?|([^:]+))$/.exec(t);
  if (mig) {
    const n = mig[1] !== undefined ? Number(mig[1]) : 1;
    const profile = mig[2] ?? mig[3];
    if (n >= 1 && (profile === undefined || MIG_PROFILE.test(profile))) return { mig: { count: n, ...(profile ? { profile } : {}) } };
    throw new UsageError(`--gpus: expected mig=<count>, mig=<profile> or mig=<count>:<profile> (a profile like 1g.10gb), got "${text}"`);
  }
  const dev = /^device=(.+)$/.exec(t);
  if (dev) {
    const parts = dev[1]!.replace(/^"(.*)"$/, '$1').split(',').map((s) => s.trim());
    if (parts.length > 0 && parts.every((p) => /^\d+$/.test(p))) return { devices: parts.map(Number) };
  }
  throw new UsageError(`--gpus: expected all, a count (2, count=2), device=0,1 or mig=2:1g.10gb, got "${text}"`);
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "1h30m", "10m", "45s", "500ms" → milliseconds; undefined when it is not a duration. */
export function parseDuration(text: string): number | undefined {
  const t = text.trim();
  if (!/^(\d+(?:\.\d+)?(ms|s|m|h|d))+$/.test(t)) return undefined;
  let ms = 0;
  for (const m of t.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) ms += Number(m[1]) * DURATION_UNITS[m[2]!]!;
  return ms;
}

/**
 * docker logs --since: a duration back from now ("10m", "1h30m"), an RFC 3339 time
 * ("2024-05-01T10:00:00Z", a date alone is midnight UTC) or Unix seconds ("1714557600.5").
 * Returns ms since the epoch.
 */
export function parseSince(text: string, now = Date.now()): number {
  const d = parseDuration(text);
  if (d !== undefined) return now - d;
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Math.round(Number(t) * 1000);
  if (/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/i.test(t)) {
    const ms = Date.parse(t.replace(' ', 'T'));
    if (Number.isFinite(ms)) return ms;
  }
  throw new UsageError(`--since: expected a duration (10m, 1h30m), an RFC 3339 time or Unix seconds, got "${text}"`);
}

/** 1536 → "1.5KiB", as docker stats prints sizes. */
export function formatBytes(n: number | undefined | null): string {
  if (n === undefined || n === null || !Number.isFinite(n)) return '--';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : Number(v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2))}${units[i]}`;
}

/** 90_000 → "About a minute", the way `docker ps` says how long ago. */
export function humanDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 1) return 'Less than a second';
  if (s === 1) return '1 second';
  if (s < 60) return `${s} seconds`;
  const m = Math.round(s / 60);
  if (m === 1) return 'About a minute';
  if (m < 60) return `${m} minutes`;
  const h = Math.round(s / 3600);
  if (h === 1) return 'About an hour';
  if (h < 48) return `${h} hours`;
  return `${Math.round(h / 24)} days`;
}
