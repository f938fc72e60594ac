import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { SeededRandom } from '../../client/data/seeded-random.js';
import { classCounts, parsePartitioner, partitionRows, sampleDirichlet, sampleGamma } from '../../simulations/partition.js';

/** 10 classes x 100 rows, labels interleaved. */
const labels = Int32Array.from({ length: 1000 }, (_, i) => i % 10);

function everyRowOnce(parts: Int32Array[], n: number): void {
  const seen = new Uint8Array(n);
  for (const p of parts) for (const r of p) seen[r]!++;
  expect([...seen].every((c) => c === 1)).toBe(true);
}

describe('iid', () => {
  it('deals every row exactly once in near-equal parts, the same for the same seed', () => {
    const a = partitionRows(labels, 7, { kind: 'iid' }, 3);
    everyRowOnce(a, labels.length);
    const sizes = a.map((p) => p.length);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    expect(partitionRows(labels, 7, { kind: 'iid' }, 3)).toEqual(a);
    expect(partitionRows(labels, 7, { kind: 'iid' }, 4)).not.toEqual(a);
  });
});

describe('category (one label per client)', () => {
  it('gives client k only class k mod 10; clients sharing a class split it evenly', () => {
    const parts = partitionRows(labels, 20, { kind: 'category' }, 1);
    everyRowOnce(parts, labels.length);
    parts.forEach((rows, k) => {
      expect(new Set([...rows].map((r) => labels[r]))).toEqual(new Set([k % 10]));
      expect(rows.length).toBe(50);
    });
  });
  it('with fewer clients than classes, leaves the other classes out', () => {
    const parts = partitionRows(labels, 3, { kind: 'category' }, 1);
    expect(parts.map((p) => p.length)).toEqual([100, 100, 100]);
  });
});

describe('dirichlet', () => {
  it('deals every row once and is deterministic in the seed', () => {
    const a = partitionRows(labels, 8, { kind: 'dirichlet', alpha: 0.5 }, 11);
    everyRowOnce(a, labels.length);
    expect(partitionRows(labels, 8, { kind: 'dirichlet', alpha: 0.5 }, 11)).toEqual(a);
  });

  it('small alpha concentrates each class on few clients; large alpha approaches iid', () => {
    // Mean over classes of the largest share one client holds of the class: E ~ 1 for alpha -> 0,
    // ~ 1/N (plus sampling spread) for alpha -> infinity.
    const maxShare = (alpha: number, seed: number): number => {
      const counts = classCounts(labels, partitionRows(labels, 10, { kind: 'dirichlet', alpha }, seed), 10);
      let s = 0;
      for (let c = 0; c < 10; c++) s += Math.max(...counts.map((row) => row[c]!)) / 100;
      return s / 10;
    };
    expect(maxShare(0.05, 1)).toBeGreaterThan(0.6);
    expect(maxShare(1000, 1)).toBeLessThan(0.2);
  });

  it('Dirichlet proportions have the right mean and variance (alpha = 0.5, n = 4)', () => {
    // Dir(alpha 1_n): E[p_i] = 1/n, Var[p_i] = (1/n)(1 - 1/n) / (n alpha + 1) = 0.1875 / 3 = 0.0625.
    // 20,000 draws: the standard error of the mean is sqrt(0.0625 / 20000) = 0.0018 (4.5 sigma = 0.008),
    // of the variance about 0.0625 * sqrt(2.4 / 20000) < 0.001 for this bounded variable; tolerance 0.004.
    const rng = new SeededRandom(5, 'test');
    const n = 4;
    const draws = 20_000;
    let sum = 0;
    let sq = 0;
    for (let i = 0; i < draws; i++) {
      const p = sampleDirichlet(0.5, n, rng);
      expect(Math.abs(p.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-12);
      sum += p[0]!;
      sq += p[0]! ** 2;
    }
    const mean = sum / draws;
    expect(Math.abs(mean - 0.25)).toBeLessThan(0.008);
    expect(Math.abs(sq / draws - mean * mean - 0.0625)).toBeLessThan(0.004);
  });

  it('Gamma(shape) draws have mean shape and variance shape (Marsaglia-Tsang and the a < 1 boost)', () => {
    for (const shape of [0.3, 2.5]) {
      const rng = new SeededRandom(9, `gamma-${shape}`);
      const draws = 40_000;
      const xs = Float64Array.from({ length: draws }, () => sampleGamma(shape, rng));
      const mean = xs.reduce((a, b) => a + b, 0) / draws;
      const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / draws;
      // standard error of the mean sqrt(shape / draws) <= 0.008; 5 sigma
      expect(Math.abs(mean - shape)).toBeLessThan(5 * Math.sqrt(shape / draws));
      expect(Math.abs(variance / shape - 1)).toBeLessThan(0.06);
    }
  });

  it('gives every client at least minPerClient rows (fast-check over seeds and alphas)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1e6 }), fc.double({ min: 0.05, max: 50, noNaN: true }), (seed, alpha) => {
        const parts = partitionRows(labels, 10, { kind: 'dirichlet', alpha }, seed, 5);
        expect(parts.every((p) => p.length >= 5)).toBe(true);
        expect(parts.reduce((a, p) => a + p.length, 0)).toBe(labels.length);
      }),
      { numRuns: 30 },
    );
  });
});

describe('arguments', () => {
  it('parses the partitioner names and refuses bad ones with a coded error', () => {
    expect(parsePartitioner('iid')).toEqual({ kind: 'iid' });
    expect(parsePartitioner('category')).toEqual({ kind: 'category' });
    expect(parsePartitioner('dirichlet:0.1')).toEqual({ kind: 'dirichlet', alpha: 0.1 });
    expect(parsePartitioner('dirichlet', 2)).toEqual({ kind: 'dirichlet', alpha: 2 });
    expect(() => parsePartitioner('dirichlet:-1')).toThrow(expect.objectContaining({ code: 'FL_ERR_INVALID_ARGUMENT' }));
    expect(() => parsePartitioner('shards')).toThrow(/--partition must be iid, category or dirichlet/);
    expect(() => partitionRows(labels, 2000, { kind: 'iid' }, 0)).toThrow(expect.objectContaining({ code: 'FL_ERR_INVALID_ARGUMENT' }));
  });
});
