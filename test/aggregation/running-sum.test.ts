import { describe, expect, it } from 'vitest';
import { addScaled, addScaledColumns, addScaledInto, referenceDistance, releaseStagedSums, SIMD_MIN_ELEMENTS, stagedSums, stagedZeros, toFloat32 } from '../../aggregation/running-sum.js';
import { allFinite } from '../../aggregation/validate-update.js';

describe('running sums', () => {
  it('addScaled and addScaledInto compute acc + w x for every length (unrolled body and tail)', () => {
    for (const n of [0, 1, 3, 4, 5, 8, 11]) {
      const x = Float32Array.from({ length: n }, (_, i) => i - 2.5);
      const acc = Float64Array.from({ length: n }, (_, i) => 10 * i);
      const out = new Float64Array(n);
      expect(addScaledInto(out, acc, x, 3)).toBe(true);
      const want = Array.from(acc, (a, i) => a + 3 * x[i]!);
      expect(Array.from(out)).toEqual(want);
      addScaled(acc, x, 3);
      expect(Array.from(acc)).toEqual(want);
    }
  });

  it('finds NaN and +-Infinity wherever they are (body lanes and tail)', () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      for (let at = 0; at < 7; at++) {
        const x = new Float32Array(7).fill(1);
        x[at] = bad;
        expect(addScaledInto(new Float64Array(7), new Float64Array(7), x, 1)).toBe(false);
        expect(allFinite(x)).toBe(false);
      }
    }
    // +Inf and -Inf together cancel to NaN, still caught; many float32 maxima never overflow float64.
    const both = Float32Array.of(1, Number.POSITIVE_INFINITY, 2, Number.NEGATIVE_INFINITY, 3);
    expect(allFinite(both)).toBe(false);
    expect(addScaledInto(new Float64Array(5), new Float64Array(5), both, 1)).toBe(false);
    const huge = new Float32Array(1001).fill(3.4e38);
    expect(allFinite(huge)).toBe(true);
    expect(addScaledInto(new Float64Array(1001), new Float64Array(1001), huge, 2 ** 28)).toBe(true);
  });

  it('StagedSum commits a staged update and leaves the sum untouched when staging fails', () => {
    const sum = stagedZeros(3);
    expect(sum.stage(Float32Array.of(1, 2, 3), 2)).toBe(true);
    sum.commit();
    expect(Array.from(sum.current)).toEqual([2, 4, 6]);
    expect(sum.stage(Float32Array.of(1, Number.NaN, 1), 1)).toBe(false);
    expect(Array.from(sum.current)).toEqual([2, 4, 6]);
    expect(sum.stage(Float32Array.of(1, 1, 1), 1)).toBe(true);
    sum.commit();
    expect(Array.from(sum.current)).toEqual([3, 5, 7]);
  });

  it('addScaledColumns adds a narrower matrix into the first columns; toFloat32 rounds once', () => {
    const acc = new Float64Array(2 * 3);
    addScaledColumns(acc, 3, Float32Array.of(1, 2, 3, 4), 2, 2, 10);
    expect(Array.from(acc)).toEqual([10, 20, 0, 30, 40, 0]);
    expect(Array.from(toFloat32(Float64Array.of(1, 1 / 3), 3))).toEqual([3, Math.fround(1)]);
  });

  it('released SIMD sums lend their memory to the next round, which starts from zero', () => {
    const lengths = [SIMD_MIN_ELEMENTS, 5];
    const x = lengths.map((n) => Float32Array.from({ length: n }, (_, i) => (i % 7) - 3));
    const first = stagedSums(lengths);
    first.forEach((s, i) => {
      expect(s.stage(x[i]!, 2)).toBe(true);
      s.commit();
    });
    const firstBuffer = first[0]!.current.buffer;
    releaseStagedSums(first);
    const second = stagedSums(lengths);
    expect(second[0]!.current.buffer).toBe(firstBuffer); // the same wasm memory, reused
    for (const s of second) expect(s.current.every((v) => v === 0)).toBe(true);
    second.forEach((s, i) => {
      expect(s.stage(x[i]!, 3)).toBe(true);
      s.commit();
      expect(Array.from(s.current)).toEqual(Array.from(x[i]!, (v) => 3 * v));
    });
    // unreleased sums are never handed out twice
    const third = stagedSums(lengths);
    expect(third[0]!.current.buffer).not.toBe(second[0]!.current.buffer);
  });

  it('referenceDistance (the SIMD sqdist kernel) equals the float64 JS sum of (x - g)^2, tails and non-finite values included', () => {
    for (const lengths of [[SIMD_MIN_ELEMENTS + 3, 7], [5, 2]]) {
      const g = lengths.map((n, v) => Float32Array.from({ length: n }, (_, i) => Math.cos(i + v) * 0.5));
      const x = lengths.map((n, v) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + v)));
      let want = 0;
      x.forEach((xv, v) => xv.forEach((a, i) => (want += (a - g[v]![i]!) ** 2)));
      const d = referenceDistance(g);
      const got = d.squared(x);
      expect(Math.abs(got - want)).toBeLessThanOrEqual(1e-12 * want); // same float64 products, summed in another order
      for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
        const y = x.map((v) => v.slice());
        y[0]![lengths[0]! - 1] = bad; // in the tail for the first, the SIMD body for the second
        y[1]![0] = bad;
        expect(Number.isFinite(d.squared(y))).toBe(false);
      }
      expect(() => d.squared([x[0]!])).toThrow(RangeError);
      d.release();
    }
  });
});
