import { describe, expect, it } from 'vitest';
import { clippedSum } from '../../aggregation/clipped-sum.js';
import { SIMD_MIN_ELEMENTS } from '../../aggregation/running-sum.js';
import { standardNormalBlocks, gaussianVector } from '../../privacy/gaussian.js';
import { seededTestSource } from '../../privacy/random.js';

/** sum_k s_k x_k and each ||x_k - g||^2 by plain float64 loops, the clipped sum's definition. */
function reference(g: Float32Array[], updates: Float32Array[][], scales: number[]): { sums: Float64Array[]; distances: number[] } {
  const sums = g.map((v) => new Float64Array(v.length));
  const distances = updates.map((x) => x.reduce((t, v, i) => t + v.reduce((u, a, j) => u + (a - g[i]![j]!) ** 2, 0), 0));
  updates.forEach((x, k) => x.forEach((v, i) => v.forEach((a, j) => (sums[i]![j] = sums[i]![j]! + scales[k]! * a))));
  return { sums, distances };
}

describe('clippedSum (DP-FedAvg: one copy of each update for its norm and its staged add)', () => {
  // SIMD (one wasm memory) and plain JS, lengths with tails past a multiple of 4
  it.each([
    ['SIMD', [SIMD_MIN_ELEMENTS + 3, 7]],
    ['JS', [5, 2]],
  ])('%s: equals float64 loops; a refused update leaves the sums as they were; a reused memory starts at zero', (_, lengths) => {
    const g = lengths.map((n, v) => Float32Array.from({ length: n }, (_, i) => Math.cos(i + v) * 0.5));
    const updates = [0, 1, 2].map((k) => lengths.map((n, v) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + v + k))));
    const scales = [1, 0.25, 0.5];
    const want = reference(g, updates, scales);
    for (let round = 0; round < 2; round++) {
      const sum = clippedSum(g);
      updates.forEach((x, k) => {
        const d = sum.load(x);
        expect(Math.abs(d - want.distances[k]!)).toBeLessThanOrEqual(1e-12 * want.distances[k]!); // same products, another order
        expect(sum.stage(scales[k]!)).toBe(-1);
        sum.commit();
        if (k === 0) {
          // a non-finite update: infinite norm, stage names the vector, nothing committed
          const bad = x.map((v) => v.slice());
          bad[1]![bad[1]!.length - 1] = Number.NaN;
          expect(Number.isFinite(sum.load(bad))).toBe(false);
          expect(sum.stage(1)).toBe(1);
        }
      });
      // the SIMD kernel does the same float64 multiply-adds in the same order per element
      sum.current.forEach((s, i) => expect(Array.from(s)).toEqual(Array.from(want.sums[i]!)));
      expect(() => sum.load([updates[0]![0]!])).toThrow(RangeError);
      sum.release(); // round 2 takes this memory from the pool and must zero it
    }
  });
});

describe('standardNormalBlocks', () => {
  it('gives the samples gaussianVector gives from the same stream, block by block', () => {
    for (const n of [0, 5, 16_384, 40_000]) {
      const got = new Float64Array(n);
      let next = 0;
      standardNormalBlocks(
        n,
        (z, start) => {
          expect(start).toBe(next);
          got.set(z, start);
          next += z.length;
        },
        seededTestSource(`blocks-${n}`),
      );
      expect(next).toBe(n);
      expect(Array.from(got)).toEqual(Array.from(gaussianVector(n, 1, seededTestSource(`blocks-${n}`))));
    }
  });
});
