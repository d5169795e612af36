import { spawnSync } from 'node:child_process';

/** Reading the attack binary's output: one line per check, `NAME RESULT expect=… want=… verdict [detail]`. */
export interface AttackLine {
  name: string;
  result: string;
  expect: string;
  want: string;
  verdict: string;
  detail: string;
}

export function parseAttackOutput(out: string): Map<string, AttackLine> {
  const m = new Map<string, AttackLine>();
  for (const l of out.split('\n').filter(Boolean)) {
    const [name, result, expect, want, verdict, ...rest] = l.split(' ');
    m.set(name!, { name: name!, result: result!, expect: expect!.slice(7), want: want!.slice(5), verdict: verdict!, detail: rest.join(' ') });
  }
  return m;
}

/** The i386 checks, by name (x86_64 builds of the attack binary only). */
export const I386_CHECKS = ['i386-mount', 'i386-unshare', 'i386-keyctl', 'i386-bpf', 'i386-setns', 'i386-kexec_load', 'i386-init_module', 'i386-perf_event_open'];

/**
 * What the kernel itself does with each ABI's getpid (the attack binary's abi-* lines, run
 * here with no filter of its own): OK, an errno name, or SIG<name>.
 */
export interface AbiProbe {
  i386: string;
  x32: string;
  /** The seccomp mode the probe ran under (0: none, so the results are the kernel's own). */
  underSeccomp: string;
}

export function probeAbis(attackBinary: string): AbiProbe {
  const r = spawnSync(attackBinary, ['abi-i386', 'abi-x32'], { encoding: 'utf8', timeout: 30_000 });
  const lines = parseAttackOutput(r.stdout ?? '');
  const underSeccomp = /probed-under-seccomp=(\S+)/.exec(lines.get('abi-i386')?.detail ?? '')?.[1] ?? '?';
  return { i386: lines.get('abi-i386')?.result ?? `no abi-i386 line (exit ${r.status})`, x32: lines.get('abi-x32')?.result ?? `no abi-x32 line (exit ${r.status})`, underSeccomp };
}

/**
 * Why a filter cannot be observed through the i386 entry point here, or undefined when it can:
 * a kernel that faults on `int $0x80` from 64-bit code (ia32_emulation=0, some VMs) never runs
 * a filter for it. (x32 needs no such probe: seccomp sees an x32 call, X32 bit and all, before
 * a kernel without x32 answers ENOSYS, so the filter's refusal shows either way.)
 */
export function i386Unreachable(probe: AbiProbe): string | undefined {
  if (probe.i386 === 'OK') return undefined;
  const filtered = probe.underSeccomp === '0' ? '' : ` (probed under seccomp mode ${probe.underSeccomp}, not unfiltered)`;
  return `the i386 ABI is not reachable on this kernel: int $0x80 getpid gave ${probe.i386} before any filter${filtered}, so no filter can be observed through it`;
}
