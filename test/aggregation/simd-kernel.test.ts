/**
 * The WebAssembly SIMD staged sums against the JS loop: the same float64 operations, so the same
 * bits; NaN and Infinity found in every lane and in the tail; refusals leave the sum as it was;
 * and the strategies give exact aggregates through them.
 */
import { describe, expect, it } from 'vitest';
import { stagedSums, stagedZeros, SIMD_MIN_ELEMENTS } from '../../aggregation/running-sum.js';
import { SeededRandom } from '../../aggregation/seeded-random.js';
import { SIMD_MAX_BYTES, simdArena, simdKernelModule } from '../../aggregation/simd-kernel.js';
import { createStrategy } from '../../aggregation/registry.js';
import { clientUpdate, denseDelta, float32Tolerance, moduleSpec, referenceSum, relativeDifference } from './fixtures.js';

describe('SIMD staged sums', () => {
  const lengths = [20_003, 13_001]; // odd lengths: the kernel's body and the JS tail
  const rng = SeededRandom.fromSeed('test/simd', 'data');

  it('is available here and used above SIMD_MIN_ELEMENTS', () => {
    expect(simdKernelModule()).not.toBeNull();
    expect(lengths[0]! + lengths[1]!).toBeGreaterThanOrEqual(SIMD_MIN_ELEMENTS);
    expect(stagedSums(lengths)[0]!.constructor.name).toBe('SimdStagedSum');
    expect(stagedSums([10, 10])[0]!.constructor.name).toBe('JsStagedSum');
    expect(simdArena(SIMD_MAX_BYTES + 1)).toBeNull(); // too large for one wasm memory: JS sums instead
  });

  it('computes the same bits as the JS loop over several updates and weights', () => {
    const simd = stagedSums(lengths);
    const js = lengths.map(stagedZeros);
    for (const w of [1, 7, 123_456, 0.3]) {
      lengths.forEach((n, t) => {
        const x = rng.uniformArray(n, 1e3);
        expect(simd[t]!.stage(x, w)).toBe(true);
        expect(js[t]!.stage(x, w)).toBe(true);
        simd[t]!.commit();
        js[t]!.commit();
      });
    }
    lengths.forEach((_, t) => expect(simd[t]!.current).toEqual(js[t]!.current));
  });

  it('finds NaN and +-Infinity in every lane of the body and in the tail, and leaves the sum unchanged', () => {
    const [sum] = stagedSums([SIMD_MIN_ELEMENTS + 3]);
    const n = SIMD_MIN_ELEMENTS + 3;
    const base = rng.uniformArray(n, 1);
    expect(sum!.stage(base, 2)).toBe(true);
    sum!.commit();
    const before = Float64Array.from(sum!.current);
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      for (const at of [0, 1, 2, 3, 4, 1001, n - 4, n - 3, n - 2, n - 1]) {
        const x = base.slice();
        x[at] = bad;
        expect(sum!.stage(x, 1), `${bad} at ${at}`).toBe(false);
        expect(sum!.current.every((v, i) => v === before[i]), `sum unchanged after ${bad} at ${at}`).toBe(true);
      }
    }
  });

  it.each(['ffa', 'fedavg'] as const)('%s through SIMD sums: exact (ffa) and refusals leave the round unchanged', (name) => {
    const strategy = createStrategy(name, { fedavg: { noise: 'off' } });
    const modules = [moduleSpec('m.q', 256, 128, 64), moduleSpec('m.v', 256, 128, 64)]; // B: 2 x 16,384 values
    const state = strategy.init({ modules }, 'simd');
    const updates = [clientUpdate(strategy, state, 'a', 3), clientUpdate(strategy, state, 'b', 5), clientUpdate(strategy, state, 'c', 2)];
    const round = strategy.begin(state);
    round.add(updates[0]!);
    const f = strategy.trainable[strategy.trainable.length - 1]!;
    const bad = updates[1]!.adapter.factors.get('m.v')![f]!.slice();
    bad[bad.length - 2] = Number.NaN;
    const factors = new Map(updates[1]!.adapter.factors);
    factors.set('m.v', { ...factors.get('m.v'), [f]: bad });
    expect(() => round.add({ ...updates[1]!, adapter: { ...updates[1]!.adapter, factors } })).toThrow(/NaN or Infinity/);
    round.add(updates[1]!);
    round.add(updates[2]!);
    const result = round.finish();
    const clean = strategy.begin(state);
    for (const u of updates) clean.add(u);
    const expected = clean.finish();
    for (const m of modules) {
      expect(result.aggregate.factors.get(m.path)![f]).toEqual(expected.aggregate.factors.get(m.path)![f]);
      if (name === 'ffa') expect(relativeDifference(denseDelta(result.aggregate, m.path), referenceSum(updates, m.path))).toBeLessThanOrEqual(float32Tolerance(updates, m.path));
    }
  });
});
