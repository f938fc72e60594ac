import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { clipFactor, clipL2, clipL2PerLayer, l2Distance, l2Norm, perLayerSensitivity } from '../../privacy/clipping.js';
import { isFedloraError } from '../../shared/errors.js';

const f32 = (...xs: number[]) => new Float32Array(xs);

/** The code of the FedloraError `fn` throws (fails the test when it throws nothing). */
function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (isFedloraError(e)) return e.message; // "CODE: text"
    throw e;
  }
  throw new Error('expected a FedloraError');
}

describe('l2Norm', () => {
  it('is the norm of the concatenation (3-4-5, 1-2-2-... by hand)', () => {
    expect(l2Norm([f32(3, 4)])).toBe(5);
    expect(l2Norm([f32(3), f32(4)])).toBe(5);
    expect(l2Norm([f32(1, 2), f32(2), f32()])).toBe(3);
    expect(l2Norm([])).toBe(0);
  });

  it('accumulates in float64: 1e6 elements of 0.1f sum without float32 drift', () => {
    const v = new Float32Array(1_000_000).fill(0.1);
    const exact = Math.sqrt(1_000_000 * Math.fround(0.1) ** 2);
    // float64 accumulation of 1e6 terms: relative error <= 1e6 * 2^-53 ~ 1e-10; float32 would be ~1e-3.
    expect(Math.abs(l2Norm([v]) - exact) / exact).toBeLessThan(1e-9);
  });
});

describe('clipL2 (flat)', () => {
  it('scales [3, 4] to norm 1 as [0.6, 0.8] with scale 0.2', () => {
    const input = f32(3, 4);
    const r = clipL2([input], 1);
    expect(r.norm).toBe(5);
    // 0.6 and 0.8 round up in float32 (norm 1 + 2e-8), so the scale is nudged a few ulps below 0.2.
    expect(r.scale).toBeLessThan(0.2);
    expect(r.scale).toBeGreaterThan(0.2 * (1 - 1e-6));
    expect(l2Norm(r.clipped)).toBeLessThanOrEqual(1);
    expect(r.clipped[0]![0]).toBeCloseTo(0.6, 6);
    expect(r.clipped[0]![1]).toBeCloseTo(0.8, 6);
    expect([...input]).toEqual([3, 4]); // input untouched
  });

  it('clips several vectors together: [3], [4] to norm 2.5 gives [1.5], [2]', () => {
    const r = clipL2([f32(3), f32(4)], 2.5);
    expect(r.clipped.map((v) => [...v])).toEqual([[1.5], [2]]);
    expect(r.scale).toBe(0.5);
  });

  it('leaves a vector within the bound unchanged (scale 1) but still returns new arrays', () => {
    const input = f32(0.3, -0.4); // float32 norm is 0.5 + 1e-8, so bound 0.6 leaves it alone
    const r = clipL2([input], 0.6);
    expect(r.scale).toBe(1);
    expect(r.clipped[0]).not.toBe(input);
    expect([...r.clipped[0]!]).toEqual([...input]);
  });

  it('handles the zero vector (scale 1, norm 0)', () => {
    const r = clipL2([new Float32Array(4)], 1);
    expect(r).toMatchObject({ norm: 0, scale: 1 });
  });

  it('property: the clipped norm never exceeds maxNorm, even after float32 rounding; direction kept', () => {
    fc.assert(
      fc.property(
        fc.array(fc.float32Array({ minLength: 0, maxLength: 40, noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }), { minLength: 1, maxLength: 4 }),
        fc.double({ min: 1e-6, max: 1e4, noNaN: true }),
        (vectors, maxNorm) => {
          const before = vectors.map((v) => [...v]);
          const r = clipL2(vectors, maxNorm);
          expect(l2Norm(r.clipped)).toBeLessThanOrEqual(maxNorm);
          expect(r.scale).toBeLessThanOrEqual(1);
          if (r.norm <= maxNorm) expect(r.scale).toBe(1);
          else expect(Math.abs(l2Norm(r.clipped) - maxNorm) / maxNorm).toBeLessThan(1e-5);
          r.clipped.forEach((v, j) => v.forEach((x, i) => expect(x).toBe(Math.fround(vectors[j]![i]! * r.scale))));
          expect(vectors.map((v) => [...v])).toEqual(before);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses a bad bound or non-finite values with FL_ERR_PRIVACY_ARGUMENT naming the parameter', () => {
    expect(codeOf(() => clipL2([f32(1)], -1))).toBe('FL_ERR_PRIVACY_ARGUMENT: maxNorm must be a finite number > 0, got -1');
    expect(codeOf(() => clipL2([f32(1)], 0))).toMatch(/^FL_ERR_PRIVACY_ARGUMENT: maxNorm must be/);
    expect(codeOf(() => clipL2([f32(1)], Number.NaN))).toMatch(/got NaN/);
    expect(codeOf(() => clipL2([f32(1)], Infinity))).toMatch(/got Infinity/);
    expect(codeOf(() => clipL2([f32(1), f32(Number.NaN)], 1))).toMatch(/FL_ERR_PRIVACY_ARGUMENT: .*vector 1 holds NaN/);
  });
});

describe('clipL2PerLayer', () => {
  it('clips each layer to its own bound (hand-computed)', () => {
    const r = clipL2PerLayer([f32(3, 4), f32(0, 0, 1)], [2.5, 2]);
    expect(r.norms).toEqual([5, 1]);
    expect(r.scales).toEqual([0.5, 1]);
    expect(r.clipped.map((v) => [...v])).toEqual([[1.5, 2], [0, 0, 1]]);
    expect(r.norm).toBeCloseTo(Math.sqrt(26), 12);
    // overall: sqrt(1.5^2 + 2^2 + 1) / sqrt(26)
    expect(r.scale).toBeCloseTo(Math.sqrt(7.25) / Math.sqrt(26), 12);
  });

  it('property: each layer within its bound, total within perLayerSensitivity', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.float32Array({ maxLength: 30, noNaN: true, noDefaultInfinity: true, min: -1e3, max: 1e3 }), fc.double({ min: 1e-3, max: 100, noNaN: true })), { minLength: 1, maxLength: 5 }),
        (layers) => {
          const r = clipL2PerLayer(layers.map(([v]) => v), layers.map(([, c]) => c));
          r.clipped.forEach((v, i) => expect(l2Norm([v])).toBeLessThanOrEqual(layers[i]![1]));
          expect(l2Norm(r.clipped)).toBeLessThanOrEqual(perLayerSensitivity(layers.map(([, c]) => c)) * (1 + 1e-12));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('refuses a bound count that does not match the vectors, and bad bounds', () => {
    expect(codeOf(() => clipL2PerLayer([f32(1), f32(2)], [1]))).toBe('FL_ERR_PRIVACY_ARGUMENT: maxNorms must be one bound per vector (2), got 1 bounds');
    expect(codeOf(() => clipL2PerLayer([f32(1)], [0]))).toMatch(/maxNorms\[0\] must be a finite number > 0, got 0/);
  });

  it('perLayerSensitivity is sqrt(sum c^2): [3, 4] -> 5', () => {
    expect(perLayerSensitivity([3, 4])).toBe(5);
  });
});

describe('l2Distance and clipFactor (DP-FedAvg clips x - g without materialising it)', () => {
  it('l2Distance is ||x - y|| over all vectors: [3, 0] - [0, 4] and [1] - [1] -> 5', () => {
    expect(l2Distance([f32(3, 0), f32(1)], [f32(0, 4), f32(1)])).toBe(5);
    expect(l2Distance([f32(3, 0, 2)], [f32(3, 0, 2)])).toBe(0);
    expect(l2Distance([f32(1, Number.NaN)], [f32(0, 0)])).toBeNaN();
    expect(codeOf(() => l2Distance([f32(1)], [f32(1, 2)]))).toMatch(/^FL_ERR_PRIVACY_ARGUMENT: y\[0\] must be 1 values like x\[0\]/);
  });

  it('clipFactor is 1 within the bound and just under C / norm above it', () => {
    expect(clipFactor(0.5, 1)).toBe(1);
    expect(clipFactor(1, 1)).toBe(1);
    const s = clipFactor(4, 1);
    expect(s).toBeLessThan(0.25);
    expect(s).toBeGreaterThan(0.25 * (1 - 2 ** -27));
    expect(codeOf(() => clipFactor(Number.POSITIVE_INFINITY, 1))).toMatch(/^FL_ERR_PRIVACY_ARGUMENT: norm must be a finite number >= 0/);
  });

  it('property: the float64 contribution s (x - y) never has a norm above C', () => {
    fc.assert(
      fc.property(fc.array(fc.float({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }), { minLength: 1, maxLength: 64 }), fc.double({ min: 1e-6, max: 1e3, noNaN: true }), (xs, c) => {
        const x = Float32Array.from(xs);
        const y = Float32Array.from(xs, (v, i) => v * 0.5 + i);
        const s = clipFactor(l2Distance([x], [y]), c);
        let q = 0;
        for (let i = 0; i < x.length; i++) q += (s * (x[i]! - y[i]!)) ** 2;
        return Math.sqrt(q) <= c || s === 1;
      }),
    );
  });
});
