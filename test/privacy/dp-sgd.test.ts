import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  DpSgdAccumulator,
  clipFactors,
  clipSensitivity,
  dpSgdGradient,
  ghostNormsSq,
  linearGhostNormsSq,
  loraGhostNormsSq,
  poissonSample,
  privatizeClippedSum,
} from '../../privacy/dp-sgd.js';
import { seededTestSource } from '../../privacy/random.js';
import { binomialBounds, chiSquareBounds } from './normal-stats.js';

const f32 = (...xs: number[]) => new Float32Array(xs);
/** Each rigorous bound below fails for a correct implementation with probability <= 2 e^-18 = 3e-8. */
const X = 18;

describe('poissonSample', () => {
  it('takes everything at q = 1 and nothing from n = 0; indices increase', () => {
    expect([...poissonSample(5, 1)]).toEqual([0, 1, 2, 3, 4]);
    expect(poissonSample(0, 0.5).length).toBe(0);
    const s = poissonSample(1000, 0.3);
    for (let i = 1; i < s.length; i++) expect(s[i]!).toBeGreaterThan(s[i - 1]!);
  });

  it('batch sizes are Binomial(n, q): the count over many draws and each index rate are in bounds', () => {
    const n = 1000;
    const q = 0.01;
    const draws = 200;
    const hits = new Uint32Array(n);
    let total = 0;
    for (let d = 0; d < draws; d++) {
      const s = poissonSample(n, q);
      total += s.length;
      for (const i of s) hits[i]! += 1;
    }
    const b = binomialBounds(n * draws, q, X); // the total is Binomial(n * draws, q)
    expect(total).toBeGreaterThan(b.low);
    expect(total).toBeLessThan(b.high);
    // first and second half of the indices are sampled alike (no positional bias)
    const half = (from: number) => hits.subarray(from, from + n / 2).reduce((a, c) => a + c, 0);
    const h = binomialBounds((n / 2) * draws, q, X);
    for (const c of [half(0), half(n / 2)]) expect(c > h.low && c < h.high).toBe(true);
  });

  it('is reproducible with a test source and refuses bad rates', () => {
    expect([...poissonSample(100, 0.2, seededTestSource(1))]).toEqual([...poissonSample(100, 0.2, seededTestSource(1))]);
    expect(() => poissonSample(10, 0)).toThrow(/FL_ERR_PRIVACY_ARGUMENT: q must be in \(0, 1\], got 0/);
    expect(() => poissonSample(10, 1.5)).toThrow(/q must be in \(0, 1\]/);
    expect(() => poissonSample(-1, 0.5)).toThrow(/n must be an integer >= 0/);
  });
});

describe('clipping per example', () => {
  it('clipFactors: min(1, C / norm), hand-computed', () => {
    expect([...clipFactors([0, 0.5, 1, 2, 4], 1)]).toEqual([1, 1, 1, 0.5, 0.25]);
    expect(() => clipFactors([Number.NaN], 1)).toThrow(/norms\[0\] must be a finite number >= 0/);
    expect(() => clipFactors([1], 0)).toThrow(/clipNorm must be a finite number > 0, got 0/);
  });

  it('flat: [3, 4] (norm 5) and [0.3, 0.4] (norm 0.5), C = 1, expected batch 2, no noise -> [0.45, 0.6]', () => {
    const r = dpSgdGradient([[f32(3, 4)], [f32(0.3, 0.4)]], { clip: 1, noiseMultiplier: 0, expectedBatchSize: 2 });
    expect(r.gradient[0]![0]).toBeCloseTo(0.45, 6);
    expect(r.gradient[0]![1]).toBeCloseTo(0.6, 6);
    expect(r.unclipped).toBe(1);
    expect(r.norms[0]![0]).toBe(5);
  });

  it('per group (DP-LoRA: A and B apart): A [3, 4] to 1, B [1] to 0.5; sensitivity sqrt(1.25)', () => {
    const clip = { groupOf: [0, 1], clipNorms: [1, 0.5] };
    const r = dpSgdGradient([[f32(3, 4), f32(1)]], { clip, noiseMultiplier: 0, expectedBatchSize: 1 });
    expect([...r.gradient[0]!].map((x) => +x.toFixed(6))).toEqual([0.6, 0.8]);
    expect(r.gradient[1]![0]).toBe(0.5);
    expect(r.norms[0]).toEqual([5, 1]);
    expect(clipSensitivity(clip)).toBeCloseTo(Math.sqrt(1.25), 15);
    expect(r.unclipped).toBe(0);
  });

  it('property: equals a naive float64 reference (noise off), for flat and grouped clipping', () => {
    const tensor = (n: number) => fc.float32Array({ minLength: n, maxLength: n, noNaN: true, noDefaultInfinity: true, min: -100, max: 100 });
    const batches = fc
      .tuple(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 }))
      .chain(([la, lb]) => fc.array(fc.tuple(tensor(la), tensor(lb)), { minLength: 1, maxLength: 6 }));
    fc.assert(
      fc.property(batches, fc.double({ min: 0.01, max: 50, noNaN: true }), fc.boolean(), (examples, c, grouped) => {
        const clip = grouped ? { groupOf: [0, 1], clipNorms: [c, c / 2] } : c;
        const bExp = 3;
        const r = dpSgdGradient(examples, { clip, noiseMultiplier: 0, expectedBatchSize: bExp });
        // reference: clip every example (per group), sum in float64, divide
        const ref = examples[0]!.map((t) => new Float64Array(t.length));
        const sq = (t: Float32Array) => t.reduce((acc, x) => acc + x * x, 0);
        for (const [ea, eb] of examples) {
          const whole = Math.min(1, c / Math.sqrt(sq(ea) + sq(eb))); // c / 0 = Infinity -> 1
          const factors = grouped ? [Math.min(1, c / Math.sqrt(sq(ea))), Math.min(1, c / 2 / Math.sqrt(sq(eb)))] : [whole, whole];
          [ea, eb].forEach((t, i) => t.forEach((x, j) => (ref[i]![j]! += (factors[i]! * x) / bExp)));
        }
        // float32 output: one rounding (2^-24 relative) plus float64 sums: 1e-6 relative is generous
        r.gradient.forEach((g, i) => g.forEach((x, j) => expect(Math.abs(x - ref[i]![j]!)).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(ref[i]![j]!)))));
      }),
      { numRuns: 150 },
    );
  });

  it('the accumulator streams micro-batches to the same result as one call', () => {
    const src = seededTestSource('examples');
    const examples = Array.from({ length: 10 }, () => [Float32Array.from({ length: 7 }, () => (src.nextUint32() / 2 ** 32 - 0.5) * 10)]);
    const acc = new DpSgdAccumulator([7], 2);
    for (const e of examples.slice(0, 4)) acc.add(e);
    for (const e of examples.slice(4)) acc.add(e);
    const streamed = acc.finish({ noiseMultiplier: 1.1, expectedBatchSize: 10, source: seededTestSource(5) });
    const once = dpSgdGradient(examples, { clip: 2, noiseMultiplier: 1.1, expectedBatchSize: 10, source: seededTestSource(5) });
    expect(streamed).toEqual(once.gradient);
    expect(acc.count).toBe(10);
  });

  it('refuses mismatched shapes, bad groups and non-finite gradients', () => {
    const acc = new DpSgdAccumulator([2, 1], 1);
    expect(() => acc.add([f32(1, 2)])).toThrow(/FL_ERR_SHAPE_MISMATCH: example gradient has 1 tensors, expected 2/);
    expect(() => acc.add([f32(1), f32(1)])).toThrow(/tensor 0 has 1 values, expected 2/);
    expect(() => acc.add([f32(1, Number.NaN), f32(1)])).toThrow(/FL_ERR_PRIVACY_ARGUMENT: example gradient 0 holds NaN/);
    expect(() => new DpSgdAccumulator([2, 1], { groupOf: [0], clipNorms: [1] })).toThrow(/clip.groupOf must be one group per tensor \(2\)/);
    expect(() => new DpSgdAccumulator([2, 1], { groupOf: [0, 2], clipNorms: [1, 1] })).toThrow(/clip.groupOf\[1\] must be a group index in 0..1, got 2/);
    expect(() => dpSgdGradient([], { clip: 1, noiseMultiplier: 1, expectedBatchSize: 1 })).toThrow(/lengths must be given when there are no examples/);
  });
});

describe('noise', () => {
  it('std per coordinate is sigma * C / (q n), also for an empty Poisson batch', () => {
    const n = 200_000;
    const sigma = 2;
    const c = 0.5;
    const bExp = 4;
    const r = dpSgdGradient([], { clip: c, noiseMultiplier: sigma, expectedBatchSize: bExp, lengths: [n] });
    const std = (sigma * c) / bExp;
    let squares = 0;
    for (const x of r.gradient[0]!) squares += (x / std) ** 2;
    const chi = chiSquareBounds(n, X); // float32 rounding changes each term by ~1e-7 relative: negligible
    expect(squares).toBeGreaterThan(chi.low);
    expect(squares).toBeLessThan(chi.high);
  });

  it('grouped clipping noises every coordinate with sigma * sqrt(sum C_g^2)', () => {
    const n = 100_000;
    const acc = new DpSgdAccumulator([n, n], { groupOf: [0, 1], clipNorms: [3, 4] });
    const g = acc.finish({ noiseMultiplier: 1, expectedBatchSize: 1 });
    for (const t of g) {
      let squares = 0;
      for (const x of t) squares += (x / 5) ** 2;
      const chi = chiSquareBounds(n, X);
      expect(squares > chi.low && squares < chi.high).toBe(true);
    }
  });

  it('privatizeClippedSum does not mutate its input and validates its options', () => {
    const sum = [new Float64Array([1, 2])];
    privatizeClippedSum(sum, { sensitivity: 1, noiseMultiplier: 1, expectedBatchSize: 2 });
    expect([...sum[0]!]).toEqual([1, 2]);
    expect(() => privatizeClippedSum(sum, { sensitivity: 1, noiseMultiplier: -1, expectedBatchSize: 2 })).toThrow(/noiseMultiplier must be a finite number >= 0, got -1/);
    expect(() => privatizeClippedSum(sum, { sensitivity: 1, noiseMultiplier: 1, expectedBatchSize: 0 })).toThrow(/expectedBatchSize must be a finite number > 0/);
  });
});

/** Deterministic pseudo-random float32 data in [-1, 1) for shape tests. */
function data(length: number, seed: string): Float32Array {
  const src = seededTestSource(seed);
  return Float32Array.from({ length }, () => src.nextUint32() / 2 ** 31 - 1);
}

describe('ghost clipping norms', () => {
  /** Naive: materialise each example's gradient sum_t u_t v_t^T in float64 and take its norm. */
  function naive(u: Float32Array, v: Float32Array, batch: number, T: number, p: number, q: number): number[] {
    const out: number[] = [];
    for (let b = 0; b < batch; b++) {
      let s = 0;
      for (let i = 0; i < p; i++) {
        for (let j = 0; j < q; j++) {
          let g = 0;
          for (let t = 0; t < T; t++) g += u[(b * T + t) * p + i]! * v[(b * T + t) * q + j]!;
          s += g * g;
        }
      }
      out.push(s);
    }
    return out;
  }

  it.each([
    { T: 1, p: 5, q: 3, path: 'single vector: ||g||^2 ||x||^2' },
    { T: 3, p: 8, q: 8, path: 'Gram form (T (p+q) <= p q)' },
    { T: 9, p: 2, q: 3, path: 'materialised (T (p+q) > p q)' },
  ])('linear layer, $path, equals the naive per-example gradient norm', ({ T, p, q }) => {
    const batch = 4;
    const g = data(batch * T * p, `g${T}`);
    const x = data(batch * T * q, `x${T}`);
    const ghost = linearGhostNormsSq(x, g, { batch, seqLen: T, inFeatures: q, outFeatures: p });
    const ref = naive(g, x, batch, T, p, q);
    // both in float64 from the same float32 inputs; only the summation order differs (~1e-15 relative)
    ghost.forEach((s, b) => expect(Math.abs(s - ref[b]!) / ref[b]!).toBeLessThan(1e-12));
  });

  it('T = 1 reduces to ||g||^2 ||x||^2 (hand-computed)', () => {
    // g = [1, 2], x = [3]: grad = [[3], [6]] -> 45 = 5 * 9
    expect([...ghostNormsSq(f32(1, 2), f32(3), { batch: 1, seqLen: 1, p: 2, q: 1 })]).toEqual([45]);
  });

  it('LoRA A and B gradient norms equal the naive per-example gradients', () => {
    const [batch, T, n, m, r, s] = [3, 4, 6, 5, 2, 2.5];
    const x = data(batch * T * n, 'x');
    const g = data(batch * T * m, 'g');
    const a = data(r * n, 'A');
    const bw = data(m * r, 'B');
    const ghost = loraGhostNormsSq({ input: x, gradOutput: g, a, b: bw, scaling: s, batch, seqLen: T, inFeatures: n, outFeatures: m, rank: r });
    for (let e = 0; e < batch; e++) {
      // dL/dB[i][k] = s sum_t g_t[i] (A x_t)[k];  dL/dA[k][j] = s sum_t (B^T g_t)[k] x_t[j]
      let nb = 0;
      let na = 0;
      for (let k = 0; k < r; k++) {
        for (let i = 0; i < m; i++) {
          let d = 0;
          for (let t = 0; t < T; t++) {
            let h = 0;
            for (let j = 0; j < n; j++) h += a[k * n + j]! * x[(e * T + t) * n + j]!;
            d += s * g[(e * T + t) * m + i]! * h;
          }
          nb += d * d;
        }
        for (let j = 0; j < n; j++) {
          let d = 0;
          for (let t = 0; t < T; t++) {
            let bg = 0;
            for (let i = 0; i < m; i++) bg += bw[i * r + k]! * g[(e * T + t) * m + i]!;
            d += s * bg * x[(e * T + t) * n + j]!;
          }
          na += d * d;
        }
      }
      expect(Math.abs(ghost.b[e]! - nb) / nb).toBeLessThan(1e-12);
      expect(Math.abs(ghost.a[e]! - na) / na).toBeLessThan(1e-12);
    }
  });

  it('refuses arrays that do not match their dimensions', () => {
    expect(() => linearGhostNormsSq(f32(1, 2), f32(1), { batch: 1, seqLen: 1, inFeatures: 3, outFeatures: 1 })).toThrow(/FL_ERR_SHAPE_MISMATCH: v has 2 values, expected 3/);
    expect(() => loraGhostNormsSq({ input: f32(1), gradOutput: f32(1), a: f32(1, 2), b: f32(1), scaling: 1, batch: 1, seqLen: 1, inFeatures: 1, outFeatures: 1, rank: 1 })).toThrow(/a \(lora_A\) has 2 values, expected 1/);
  });
});
