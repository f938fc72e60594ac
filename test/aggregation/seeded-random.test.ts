/**
 * Known-answer tests of the specified generator: FFA-LoRA's frozen A must be the same bytes on
 * every machine and Node version, so the first values are pinned here, and checked against an
 * independent Python implementation of the same spec (reference/seeded_random.py).
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ffaFrozenA, FFA_A_DOMAIN } from '../../aggregation/ffa.js';
import { SeededRandom } from '../../aggregation/seeded-random.js';
import { isFedloraError } from '../../shared/errors.js';

const PATH = 'model.layers.0.self_attn.q_proj';

function python(domain: string, seed: string, path: string, rank: number, n: number, count: number): { uint32: number[]; a_bits: number[] } {
  const script = fileURLToPath(new URL('./reference/seeded_random.py', import.meta.url));
  return JSON.parse(execFileSync('python3', [script, domain, seed, path, String(rank), String(n), String(count)]).toString()) as { uint32: number[]; a_bits: number[] };
}

function bits(values: Float32Array): number[] {
  return Array.from(new Uint32Array(values.buffer, values.byteOffset, values.length));
}

describe('SeededRandom (xoshiro128** 1.1 seeded by SHA-256)', () => {
  it('matches the reference outputs of xoshiro128** for the state [1, 2, 3, 4]', () => {
    // From the reference C code (prng.di.unimi.it/xoshiro128starstar.c) with s = {1, 2, 3, 4}.
    const rng = new SeededRandom([1, 2, 3, 4]);
    expect(Array.from({ length: 10 }, () => rng.nextUint32())).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492, 1287239034, 3734860849, 3729100597, 4258142804]);
  });

  it('pins the first outputs seeded from (domain, seed, path)', () => {
    const rng = SeededRandom.fromSeed(FFA_A_DOMAIN, 'job-42', PATH);
    // Computed by reference/seeded_random.py (independent implementation of the spec).
    expect(Array.from({ length: 8 }, () => rng.nextUint32())).toEqual([4262478704, 3112199824, 3933437658, 2011207664, 3330067736, 3507193083, 3820097148, 3623554926]);
  });

  it('pins FFA-LoRA A = U(-1/sqrt(n), 1/sqrt(n)) bit for bit', () => {
    const A = ffaFrozenA('job-42', { path: PATH, outFeatures: 32, inFeatures: 64, rank: 4, alpha: 8 });
    expect(A.length).toBe(4 * 64);
    expect(bits(A.subarray(0, 8))).toEqual([1039933574, 1030095256, 1037362940, 3154245264, 1032649114, 1034032904, 1036477468, 1034941982]);
  });

  it('agrees with the Python reference on other seeds, paths and sizes (all of A)', () => {
    for (const [seed, path, rank, n] of [['0', 'model.layers.31.self_attn.v_proj', 3, 17], ['ünïcode seed', 'dense_1', 2, 1000]] as const) {
      const A = ffaFrozenA(seed, { path, outFeatures: 8, inFeatures: n, rank, alpha: 1 });
      const ref = python(FFA_A_DOMAIN, seed, path, rank, n, rank * n);
      expect(bits(A)).toEqual(ref.a_bits);
    }
  });

  it('keeps A inside the Kaiming bound and spread over it', () => {
    const n = 4096;
    const A = ffaFrozenA('job', { path: PATH, outFeatures: 8, inFeatures: n, rank: 16, alpha: 16 });
    const bound = 1 / Math.sqrt(n);
    let max = 0;
    let sumSq = 0;
    for (const v of A) {
      max = Math.max(max, Math.abs(v));
      sumSq += v * v;
    }
    expect(max).toBeLessThanOrEqual(bound);
    expect(max).toBeGreaterThan(0.999 * bound);
    // Var of U(-b, b) is b^2 / 3; with 65,536 draws the sample variance is within ~1% (4 sigma).
    expect(sumSq / A.length / (bound ** 2 / 3)).toBeCloseTo(1, 1);
  });

  it('gives different streams for different seeds, paths and domains', () => {
    const first = (d: string, s: string, p: string) => SeededRandom.fromSeed(d, s, p).nextUint32();
    const base = first('d', 's', 'p');
    expect(first('d', 's2', 'p')).not.toBe(base);
    expect(first('d', 's', 'p2')).not.toBe(base);
    expect(first('d2', 's', 'p')).not.toBe(base);
  });

  it('refuses the all-zero state and NUL in seed parts', () => {
    expect(() => new SeededRandom([0, 0, 0, 0])).toThrow(/all zero/);
    try {
      SeededRandom.fromSeed('d', 'a\0b');
      expect.unreachable();
    } catch (e) {
      expect(isFedloraError(e, 'FL_ERR_INVALID_ARGUMENT')).toBe(true);
    }
  });
});
