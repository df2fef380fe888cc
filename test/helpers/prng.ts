/**
 * Seeded pseudo-random numbers for reproducible test sequences.
 *
 * A failing randomized test prints its seed; rerun with `MCTS_SEED=<seed>` to replay the
 * same sequence. The generator is sfc32 seeded through splitmix32: small, fast and good
 * enough for test data (not for anything secret).
 */

export const SEED_ENV = 'MCTS_SEED';

/** Returns the seed from `MCTS_SEED` (decimal or 0x-hex) or a fresh random 32-bit one. */
export function seedFromEnv(): number {
  const text = process.env[SEED_ENV];
  if (text !== undefined && text.trim() !== '') {
    const seed = Number(text.trim());
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
      throw new Error(`${SEED_ENV} must be an integer in [0, 2^32): got ${JSON.stringify(text)}`);
    }
    return seed;
  }
  return Math.floor(Math.random() * 0x100000000) >>> 0;
}

export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(readonly seed: number) {
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** Uniform integer in [0, 2^32). */
  u32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** Uniform float in [0, 1). */
  float(): number {
    return this.u32() / 0x100000000;
  }

  /** Uniform integer in [min, max] (both inclusive). */
  int(min: number, max: number): number {
    if (max < min) throw new Error(`int(${min}, ${max}): empty range`);
    return min + Math.floor(this.float() * (max - min + 1));
  }

  chance(probability: number): boolean {
    return this.float() < probability;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[this.int(0, items.length - 1)];
  }

  /** Picks by weight: `[[weight, value], ...]`. */
  weighted<T>(table: ReadonlyArray<readonly [number, T]>): T {
    let total = 0;
    for (const [weight] of table) total += weight;
    let x = this.float() * total;
    for (const [weight, value] of table) {
      x -= weight;
      if (x < 0) return value;
    }
    return table[table.length - 1][1];
  }

  /** Uniform unsigned 64-bit integer as a decimal string. */
  u64String(): string {
    const hi = BigInt(this.u32());
    const lo = BigInt(this.u32());
    return ((hi << 32n) | lo).toString();
  }

  /** `length` random bytes drawn from `alphabet` (all 256 byte values when omitted). */
  bytes(length: number, alphabet?: Buffer): Buffer {
    const out = Buffer.allocUnsafe(length);
    if (alphabet === undefined) {
      for (let i = 0; i < length; i += 4) {
        const x = this.u32();
        out[i] = x & 0xff;
        if (i + 1 < length) out[i + 1] = (x >>> 8) & 0xff;
        if (i + 2 < length) out[i + 2] = (x >>> 16) & 0xff;
        if (i + 3 < length) out[i + 3] = x >>> 24;
      }
    } else {
      for (let i = 0; i < length; i++) out[i] = alphabet[this.int(0, alphabet.length - 1)];
    }
    return out;
  }
}
