/**
 * Copies and freezing for configuration data. Only plain objects and arrays are walked:
 * class instances (a Personality, a SecurityProfile) are immutable by design and shared as
 * they are, and freezing one from outside would fix fields it may still set itself.
 */

function isPlain(v: unknown): v is Record<string, unknown> | unknown[] {
  if (Array.isArray(v)) return true;
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** An independent copy of the plain data in `v`, with no array or plain object shared. */
export function deepCopy<T>(v: T): T {
  if (Array.isArray(v)) return v.map((x) => deepCopy(x)) as T;
  if (!isPlain(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = deepCopy(x);
  return out as T;
}

/** Freezes `v` and every plain object and array reachable from it; returns `v`. */
export function deepFreeze<T>(v: T): T {
  if (!isPlain(v) || Object.isFrozen(v)) return v;
  Object.freeze(v);
  for (const x of Object.values(v)) deepFreeze(x);
  return v;
}
