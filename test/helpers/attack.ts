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
