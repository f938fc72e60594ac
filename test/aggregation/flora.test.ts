/** FLoRA stacking: hand-computed stack, exactness for random shapes and ranks, rounds, compression vs numpy. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compressFloraAdapter, FloraStrategy } from '../../aggregation/flora.js';
import type { ClientUpdate } from '../../aggregation/strategy.js';
import type { Adapter } from '../../shared/adapter.js';
import { isFedloraError } from '../../shared/errors.js';
import { clientUpdate, denseDelta, float32Tolerance, moduleSpec, numpySvd, referenceSum, relativeDifference } from './fixtures.js';

const flora = new FloraStrategy();

describe('flora', () => {
  it('stacks A rows weighted by p_k (s_k / s) and B columns as they are (hand-computed)', () => {
    const mod = (rank: number) => moduleSpec('q', 2, 2, rank, rank); // s = 1
    const u = (source: string, n: number, rank: number, A: number[], B: number[]): ClientUpdate => ({
      source,
      numExamples: n,
      adapter: { layout: { variant: 'lora', modules: [mod(rank)] }, factors: new Map([['q', { A: Float32Array.from(A), B: Float32Array.from(B) }]]) },
    });
    const round = flora.begin(null);
    round.add(u('one', 1, 1, [1, 2], [3, 4]));
    round.add(u('two', 3, 2, [1, 0, 0, 1], [1, 2, 3, 4]));
    const { aggregate } = round.finish();
    expect(aggregate.layout.modules[0]).toMatchObject({ rank: 3, alpha: 3 });
    const f = aggregate.factors.get('q')!;
    expect(Array.from(f.A!)).toEqual([0.25, 0.5, 0.75, 0, 0, 0.75]);
    // B_stack [2, 3]: row 0 = [3 | 1, 2], row 1 = [4 | 3, 4]
    expect(Array.from(f.B!)).toEqual([3, 1, 2, 4, 3, 4]);
  });

  it('is exact for random shapes, heterogeneous ranks, alphas and weights (property)', () => {
    fc.assert(
      fc.property(
        fc.record({
          m: fc.integer({ min: 1, max: 9 }),
          n: fc.integer({ min: 1, max: 9 }),
          clients: fc.array(fc.record({ rank: fc.integer({ min: 1, max: 6 }), alpha: fc.integer({ min: 1, max: 32 }), n: fc.integer({ min: 1, max: 1000 }) }), { minLength: 1, maxLength: 6 }),
          seed: fc.string(),
        }),
        ({ m, n, clients, seed }) => {
          const spec = { modules: [moduleSpec('p', m, n, 4)] };
          const state = flora.init(spec, 'prop');
          const updates = clients.map((c, k) => {
            const u = clientUpdate(flora, state, `${seed}/${k}`, c.n, c.rank);
            const modules = u.adapter.layout.modules.map((x) => ({ ...x, alpha: c.alpha }));
            return { ...u, adapter: { ...u.adapter, layout: { ...u.adapter.layout, modules } } };
          });
          const round = flora.begin(state);
          for (const u of updates) round.add(u);
          const { aggregate } = round.finish();
          // each client's planned rank is capped at min(m, n) (issue 12)
          expect(aggregate.layout.modules[0]!.rank).toBe(clients.reduce((t, c) => t + Math.min(c.rank, m, n), 0));
          expect(relativeDifference(denseDelta(aggregate, 'p'), referenceSum(updates, 'p'))).toBeLessThanOrEqual(float32Tolerance(updates, 'p'));
        },
      ),
      { numRuns: 150 },
    );
  });

  it('accumulates rounds: the state adapter is the exact sum of every round and each stack is what clients merge', () => {
    const spec = { modules: [moduleSpec('p', 5, 4, 2, 4), moduleSpec('v', 3, 6, 2, 4)] };
    let state = flora.init(spec, 'rounds');
    const all: ClientUpdate[][] = [];
    for (let t = 0; t < 3; t++) {
      expect(flora.plan(state, [{ id: 'c', rank: 3 }])[0]).toMatchObject({ start: 'fresh', mergeFirst: state.lastRoundUpdate });
      const updates = [clientUpdate(flora, state, `r${t}a`, 2, 1 + t), clientUpdate(flora, state, `r${t}b`, 5, 3)];
      const round = flora.begin(state);
      for (const u of updates) round.add(u);
      const result = round.finish();
      expect(result.state.lastRoundUpdate).toBe(result.aggregate);
      state = result.state;
      all.push(updates);
    }
    expect(state.round).toBe(3);
    for (const m of spec.modules) {
      const expected = new Float64Array(m.outFeatures * m.inFeatures);
      for (const updates of all) referenceSum(updates, m.path).forEach((v, i) => (expected[i]! += v));
      expect(state.adapter!.layout.modules.find((x) => x.path === m.path)!.rank).toBe(4 + 5 + 6);
      // Each round's stack is rounded once and concatenation copies: a few float32 ulps relative.
      expect(relativeDifference(denseDelta(state.adapter!, m.path), expected)).toBeLessThan(1e-6);
    }
  });

  it('compresses the accumulated update by truncated SVD: same factors and error as numpy', () => {
    const spec = { modules: [moduleSpec('p', 12, 9, 3, 6)] };
    const state = flora.init(spec, 'svd');
    const round = flora.begin(state);
    for (const k of ['a', 'b', 'c']) round.add(clientUpdate(flora, state, k, 1 + k.charCodeAt(0) - 97, 3));
    const stacked: Adapter = round.finish().aggregate; // rank 9 = min(m, n): the QR path
    const dense = denseDelta(stacked, 'p');
    for (const rank of [1, 4, 8]) {
      const ref = numpySvd(dense, 12, 9, rank);
      const c = compressFloraAdapter(stacked, rank);
      expect(c.adapter.layout.modules[0]).toMatchObject({ rank, alpha: rank });
      // float32 factors and float64 LAPACK: agree to ~1e-6 relative.
      expect(relativeDifference(denseDelta(c.adapter, 'p'), ref.best)).toBeLessThan(1e-5);
      expect(c.relativeError).toBeCloseTo(ref.relative_error, 6);
      expect(c.perModule.p).toBeCloseTo(ref.relative_error, 6);
    }
    expect(compressFloraAdapter(stacked, 9).relativeError).toBeLessThan(1e-7);
  });

  it('compresses a stack of rank above min(m, n) through the dense path', () => {
    const spec = { modules: [moduleSpec('p', 4, 6, 3, 3)] };
    const state = flora.init(spec, 'wide');
    const round = flora.begin(state);
    for (const k of ['a', 'b']) round.add(clientUpdate(flora, state, k, 1, 3)); // rank 6 > m = 4
    const stacked = round.finish().aggregate;
    const ref = numpySvd(denseDelta(stacked, 'p'), 4, 6, 2);
    const c = compressFloraAdapter(stacked, 2);
    expect(c.relativeError).toBeCloseTo(ref.relative_error, 6);
    expect(relativeDifference(denseDelta(c.adapter, 'p'), ref.best)).toBeLessThan(1e-5);
  });

  it('refuses a compression rank below 1', () => {
    const state = flora.init({ modules: [moduleSpec('p', 2, 2, 1)] }, 's');
    const round = flora.begin(state);
    round.add(clientUpdate(flora, state, 'a', 1));
    const stacked = round.finish().aggregate;
    try {
      compressFloraAdapter(stacked, 0);
      expect.unreachable();
    } catch (e) {
      expect(isFedloraError(e, 'FL_ERR_INVALID_ARGUMENT')).toBe(true);
    }
  });
});
