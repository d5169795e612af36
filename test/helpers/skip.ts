/**
 * Every skipped test says why: `describe.skipIf(skipBecause(reason, what))` prints the reason
 * (when there is one) and returns whether to skip; `skipTest(ctx, what, reason)` does the same
 * from inside a running test.
 */
export function skipBecause(reason: string | undefined | false, what: string): boolean {
  if (reason) console.warn(`${what} skipped: ${reason}`);
  return !!reason;
}

/** A test that finds, once running, that the host lacks what it needs: prints why and skips. */
export function skipTest(ctx: { skip(note?: string): void }, what: string, reason: string): void {
  console.warn(`${what} skipped: ${reason}`);
  ctx.skip(reason);
}
