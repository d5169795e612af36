/**
 * Every skipped test says why: `describe.skipIf(skipBecause(reason, what))` prints the reason
 * (when there is one) and returns whether to skip.
 */
export function skipBecause(reason: string | undefined | false, what: string): boolean {
  if (reason) console.warn(`${what} skipped: ${reason}`);
  return !!reason;
}
