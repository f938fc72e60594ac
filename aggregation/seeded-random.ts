/**
 * A specified, seeded pseudo-random generator for everything that must come out identical on every
 * machine and Node version: FFA-LoRA's frozen A (docs/strategies.md, "ffa"), Fed-SB's orthonormal
 * fallback, the sketch of FedAvg's noise figure, and the synthetic adapters of the demo.
 *
 * Why our own and not a package: the generator is part of the wire contract (a client regenerates
 * A and compares hashes), so it must be a fixed, documented algorithm that uses only operations
 * IEEE 754 and ECMAScript define exactly (integer ops, +, *, /, sqrt). Math.random is unspecified;
 * the npm generators we looked at either lack a specified seeding or use Math.log/cos, whose last
 * bit may change between V8 versions. The algorithm is 15 lines, pinned by known-answer tests
 * (test/aggregation/seeded-random.test.ts) against an independent Python implementation.
 *
 * - Seeding: SHA-256 of the UTF-8 bytes of `domain \0 part1 \0 part2 ...` (no part may contain NUL);
 *   the first 16 bytes of the digest, read as four little-endian uint32, are the state.
 * - Generator: xoshiro128** 1.1 (Blackman & Vigna, https://prng.di.unimi.it/xoshiro128starstar.c).
 * - Uniform floats: the top 24 bits of a draw divided by 2^24, in [0, 1), exact in float32.
 */
import { createHash } from 'node:crypto';
import { FedloraError } from '../shared/errors.js';

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

export class SeededRandom {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** @param state four uint32 words, not all zero (xoshiro's one forbidden state) */
  constructor(state: readonly [number, number, number, number]) {
    [this.s0, this.s1, this.s2, this.s3] = state.map((w) => w >>> 0) as [number, number, number, number];
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) {
      throw new FedloraError('FL_ERR_INVALID_ARGUMENT', 'xoshiro128** state must not be all zero');
    }
  }

  /**
   * A generator seeded from SHA-256(domain \0 parts...). The domain names the use and its version
   * (e.g. `fedlora/ffa/lora_A/v1`) so two uses of one job seed never share a stream.
   */
  static fromSeed(domain: string, ...parts: string[]): SeededRandom {
    for (const p of [domain, ...parts]) {
      if (p.includes('\0')) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `seed part ${JSON.stringify(p)} must not contain NUL`);
    }
    const digest = createHash('sha256').update([domain, ...parts].join('\0'), 'utf8').digest();
    const words: [number, number, number, number] = [digest.readUInt32LE(0), digest.readUInt32LE(4), digest.readUInt32LE(8), digest.readUInt32LE(12)];
    // SHA-256 giving 128 zero bits is not a practical event; the constructor still refuses it.
    return new SeededRandom(words);
  }

  /** The next 32-bit output of xoshiro128** 1.1, as an unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1): the top 24 bits of a draw over 2^24 (exactly representable in float32). */
  nextUnit(): number {
    return (this.nextUint32() >>> 8) / 16777216;
  }

  /** Uniform in [-bound, bound): (2u - 1) * bound, rounded once to float32 by the caller's array. */
  nextSymmetric(bound: number): number {
    return (2 * this.nextUnit() - 1) * bound;
  }

  /** +1 or -1 with equal probability (the top bit of a draw). */
  nextSign(): number {
    return this.nextUint32() >>> 31 === 0 ? 1 : -1;
  }

  /** Fills a new Float32Array of `length` values uniform in [-bound, bound). */
  uniformArray(length: number, bound: number): Float32Array {
    const out = new Float32Array(length);
    for (let i = 0; i < length; i++) out[i] = this.nextSymmetric(bound);
    return out;
  }
}
