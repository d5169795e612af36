/**
 * xoshiro128** seeded through splitmix32: small, fast, and its whole state is four 32-bit
 * words, so a snapshot resumes the exact sequence.
 */
export class Random {
  private constructor(private readonly s: Uint32Array) {}

  static fromSeed(seed: number): Random {
    let a = seed >>> 0;
    const s = new Uint32Array(4);
    for (let i = 0; i < 4; i++) {
      a = (a + 0x9e3779b9) >>> 0;
      let t = a ^ (a >>> 16);
      t = Math.imul(t, 0x21f0aaad);
      t ^= t >>> 15;
      t = Math.imul(t, 0x735a2d97);
      t ^= t >>> 15;
      s[i] = t >>> 0;
    }
    if ((s[0]! | s[1]! | s[2]! | s[3]!) === 0) s[0] = 1;
    return new Random(s);
  }

  static fromState(state: readonly number[]): Random {
    return new Random(Uint32Array.from(state));
  }

  state(): number[] {
    return Array.from(this.s);
  }

  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Standard normal (Box–Muller; the second value is dropped to keep the state small). */
  gaussian(): number {
    const u = (this.nextUint32() + 1) / 4294967297; // (0, 1): log(0) must not happen
    const v = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

export function validSeed(seed: unknown): boolean {
  return typeof seed === 'number' && Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff;
}
