/** Restart policy: how often and how patiently a personality restarts a failed container. */
import { RuntimeError } from '../errors.js';
import type { Personality } from './personality.js';

export interface RestartPolicy {
  maxRetries: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  multiplier: number;
}

export function restartPolicy(personality: Personality): RestartPolicy {
  const d = personality.decisions;
  return {
    maxRetries: d.maxRetries,
    initialBackoffMs: Math.round(d.initialBackoffMs),
    maxBackoffMs: Math.round(d.maxBackoffMs),
    multiplier: d.backoffMultiplier,
  };
}

/**
 * How long to wait before restart attempt `attempt` (1 for the first restart), or
 * undefined once the policy's retries are spent.
 */
export function restartBackoffMs(policy: RestartPolicy, attempt: number): number | undefined {
  if (!Number.isInteger(attempt) || attempt < 1) {
    throw new RuntimeError(`restart attempt must be an integer >= 1, got ${attempt}`, { code: 'EINVAL' });
  }
  if (attempt > policy.maxRetries) return undefined;
  return Math.round(Math.min(policy.maxBackoffMs, policy.initialBackoffMs * policy.multiplier ** (attempt - 1)));
}
