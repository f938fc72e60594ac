import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { clipL2, clipL2PerLayer, l2Norm, perLayerSensitivity } from '../../privacy/clipping.js';
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
