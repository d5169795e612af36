/** Signal names and numbers as Linux x86-64 numbers them (signal(7)). */
import { RuntimeError } from './errors.js';

export const SIGNALS: Readonly<Record<string, number>> = Object.freeze({
  SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGBUS: 7, SIGFPE: 8, SIGKILL: 9,
  SIGUSR1: 10, SIGSEGV: 11, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15, SIGSTKFLT: 16, SIGCHLD: 17,
  SIGCONT: 18, SIGSTOP: 19, SIGTSTP: 20, SIGTTIN: 21, SIGTTOU: 22, SIGURG: 23, SIGXCPU: 24, SIGXFSZ: 25,
  SIGVTALRM: 26, SIGPROF: 27, SIGWINCH: 28, SIGIO: 29, SIGPWR: 30, SIGSYS: 31,
});

/** Real-time signals are SIGRTMIN+n / SIGRTMAX-n; glibc reserves 32 and 33, so SIGRTMIN is 34. */
const SIGRTMIN = 34;
const SIGRTMAX = 64;

/** "SIGTERM", "term", "TERM", "SIGRTMIN+2" or 15 → the signal number. */
export function signalNumber(sig: string | number): number {
  if (typeof sig === 'number') {
    if (!Number.isInteger(sig) || sig < 1 || sig > SIGRTMAX) throw new RuntimeError(`invalid signal ${sig}: expected 1..${SIGRTMAX}`, { code: 'EINVAL', step: 'signal' });
    return sig;
  }
  const upper = sig.toUpperCase();
  if (/^\d+$/.test(upper)) return signalNumber(Number(upper));
  const name = upper.startsWith('SIG') ? upper : `SIG${upper}`;
  const rt = /^SIGRT(MIN|MAX)(?:([+-])(\d+))?$/.exec(name);
  if (rt) {
    const base = rt[1] === 'MIN' ? SIGRTMIN : SIGRTMAX;
    const n = base + (rt[2] === '-' ? -1 : 1) * Number(rt[3] ?? 0);
    if (n < SIGRTMIN || n > SIGRTMAX) throw new RuntimeError(`unknown signal "${sig}": outside SIGRTMIN..SIGRTMAX`, { code: 'EINVAL', step: 'signal' });
    return n;
  }
  const n = SIGNALS[name];
  if (n === undefined) throw new RuntimeError(`unknown signal "${sig}"`, { code: 'EINVAL', step: 'signal' });
  return n;
}

/** 15 → "SIGTERM"; real-time signals as "SIGRTMIN+n"; null for no signal. */
export function signalName(n: number | null | undefined): string | null {
  if (!n) return null;
  const named = Object.entries(SIGNALS).find(([, v]) => v === n)?.[0];
  if (named) return named;
  if (n >= SIGRTMIN && n <= SIGRTMAX) return n === SIGRTMIN ? 'SIGRTMIN' : `SIGRTMIN+${n - SIGRTMIN}`;
  return `SIG${n}`;
}
