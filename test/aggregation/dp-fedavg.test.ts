/**
 * DP-FedAvg as a wrapper: clipping bounds each client's influence, the noise on the average has
 * std z C / n, without noise it is the inner aggregate of clipped deltas, adaptive clipping moves C
 * as Andrew et al. 2021 say, and flora is refused.
 */
import { describe, expect, it } from 'vitest';
import { DpFedAvgStrategy, updateNoiseMultiplier, type DpAggregationReport } from '../../aggregation/dp-fedavg.js';
import { createStrategy } from '../../aggregation/registry.js';
import type { ClientUpdate, GlobalState, Strategy } from '../../aggregation/strategy.js';
import type { Adapter, ModuleFactors } from '../../shared/adapter.js';
import { isFedloraError, type ErrorCode } from '../../shared/errors.js';
import { seededTestSource } from '../../privacy/random.js';
import { clientUpdate, moduleSpec } from './fixtures.js';

const modules = [moduleSpec('model.layers.0.self_attn.q_proj', 12, 10, 3), moduleSpec('model.layers.0.self_attn.v_proj', 8, 10, 3)];

function expectCode(fn: () => unknown, code: ErrorCode, text?: RegExp): void {
  try {
    fn();
  } catch (e) {
    expect(isFedloraError(e, code), String(e)).toBe(true);
    if (text) expect(String(e)).toMatch(text);
    return;
  }
  expect.unreachable(`expected ${code}`);
}

/** The trainable tensors of an adapter, concatenated (float64). */
function flat(strategy: Strategy, adapter: Adapter): Float64Array {
  const parts = strategy.trainableVectors(adapter);
  const out = new Float64Array(parts.reduce((t, p) => t + p.data.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p.data, o);
    o += p.data.length;
  }
  return out;
}

function aggregate(strategy: Strategy, state: GlobalState, updates: readonly ClientUpdate[]) {
  const round = strategy.begin(state);
  for (const u of updates) round.add(u);
  return round.finish();
}

/**
 * The update whose trainable tensors are global + clip(delta), clipping computed here on its own
 * (float64 norm, scale min(1, C / norm)), independent of privacy/clipping.ts.
 */
function clippedByHand(strategy: Strategy, state: GlobalState, u: ClientUpdate, C: number): ClientUpdate {
  const g = strategy.trainableVectors(state.adapter!);
  const v = strategy.trainableVectors(u.adapter);
  let sq = 0;
  v.forEach((t, i) => t.data.forEach((x, j) => (sq += (x - g[i]!.data[j]!) ** 2)));
  const scale = Math.min(1, C / Math.sqrt(sq));
  const factors = new Map<string, ModuleFactors>([...u.adapter.factors].map(([p, f]) => [p, { ...f }]));
  v.forEach((t, i) => {
    const data = Float32Array.from(t.data, (x, j) => g[i]!.data[j]! + (x - g[i]!.data[j]!) * scale);
    factors.set(t.path, { ...factors.get(t.path), [t.factor]: data });
  });
  return { ...u, numExamples: 1, adapter: { ...u.adapter, factors } };
}

describe('DP-FedAvg wrapper', () => {
  it('refuses to wrap flora with FL_ERR_NOT_A_SUM, saying why and pointing to DP-SGD', () => {
    expectCode(() => new DpFedAvgStrategy(createStrategy('flora'), { noiseMultiplier: 1 }), 'FL_ERR_NOT_A_SUM', /not a sum.*client-side DP-SGD/);
  });

  it('refuses bad parameters with FL_ERR_PRIVACY_ARGUMENT', () => {
    const inner = createStrategy('ffa');
    expectCode(() => new DpFedAvgStrategy(inner, { noiseMultiplier: -1 }), 'FL_ERR_PRIVACY_ARGUMENT', /noiseMultiplier/);
    expectCode(() => new DpFedAvgStrategy(inner, { noiseMultiplier: 1, clipNorm: 0 }), 'FL_ERR_PRIVACY_ARGUMENT', /clipNorm/);
    expectCode(() => new DpFedAvgStrategy(inner, { noiseMultiplier: 1, adaptive: { targetUnclippedQuantile: 1 } }), 'FL_ERR_PRIVACY_ARGUMENT');
    expectCode(() => new DpFedAvgStrategy(inner, { noiseMultiplier: 1, sampledClients: 0 }), 'FL_ERR_PRIVACY_ARGUMENT');
  });

  describe.each(['fedavg', 'ffa', 'fedsb'] as const)('around %s', (name) => {
    const inner = createStrategy(name, { fedavg: { noise: 'off' } });
    const state = inner.init({ modules }, 'dp');
    const updates = ['a', 'b', 'c', 'd'].map((k, i) => clientUpdate(inner, state, k, 10 * (i + 1)));
    const C = 0.5;

    it('without noise (z = 0) equals the inner equal-weight aggregate of the clipped deltas', () => {
      const dp = new DpFedAvgStrategy(inner, { noiseMultiplier: 0, clipNorm: C });
      const result = aggregate(dp, state, updates);
      const expected = aggregate(inner, state, updates.map((u) => clippedByHand(inner, state, u, C)));
      const got = flat(inner, result.aggregate);
      const want = flat(inner, expected.aggregate);
      // Two float32 roundings of the same float64 values (delta, clipped value): a few ulps.
      got.forEach((x, i) => expect(Math.abs(x - want[i]!)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(want[i]!))));
      const dpReport = (result.report as DpAggregationReport).dp;
      expect(dpReport).toMatchObject({ clipNorm: C, noiseMultiplier: 0, sampledClients: 4, noiseStdOnAverage: 0 });
      expect(dpReport.clippedUpdates).toBe(4); // random factors are far from the global ones
    });

    it('bounds each client: adding one (however large) moves the average by at most C / n', () => {
      const n = 5;
      const dp = new DpFedAvgStrategy(inner, { noiseMultiplier: 0, clipNorm: C, sampledClients: n });
      const huge = clientUpdate(inner, state, 'huge', 1);
      const scaled: ClientUpdate = {
        ...huge,
        adapter: { ...huge.adapter, factors: new Map([...huge.adapter.factors].map(([p, f]) => [p, Object.fromEntries(Object.entries(f).map(([k, v]) => [k, inner.trainable.includes(k as 'A') ? v.map((x: number) => x * 1e4) : v]))])) },
      };
      const without = flat(inner, aggregate(dp, state, updates).aggregate);
      const withHuge = flat(inner, aggregate(dp, state, [...updates, scaled]).aggregate);
      let sq = 0;
      withHuge.forEach((x, i) => (sq += (x - without[i]!) ** 2));
      // C / n plus float32 rounding of each coordinate (~1e-7 relative of values ~1).
      expect(Math.sqrt(sq)).toBeLessThanOrEqual(C / n + 1e-5);
      expect(Math.sqrt(sq)).toBeGreaterThan(0.99 * (C / n)); // and it really was clipped to C, not less
    });

    it('keeps the Strategy contract: no input mutation, order independence (z = 0)', () => {
      const dp = new DpFedAvgStrategy(inner, { noiseMultiplier: 0, clipNorm: C });
      const before = updates.map((u) => flat(inner, u.adapter));
      const globalBefore = flat(inner, state.adapter!);
      const forward = flat(inner, aggregate(dp, state, updates).aggregate);
      const backward = flat(inner, aggregate(dp, state, [...updates].reverse()).aggregate);
      updates.forEach((u, i) => expect(flat(inner, u.adapter)).toEqual(before[i]));
      expect(flat(inner, state.adapter!)).toEqual(globalBefore);
      // float64 sums of the same clipped float32 deltas in another order: ~1e-16 before rounding.
      forward.forEach((x, i) => expect(Math.abs(x - backward[i]!)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(x))));
    });

    it('refuses what the inner strategy refuses, before touching the sum', () => {
      const dp = new DpFedAvgStrategy(inner, { noiseMultiplier: 0, clipNorm: C });
      const round = dp.begin(state);
      const u = updates[0]!;
      const f = inner.trainable[0]!;
      const path = modules[0]!.path;
      const bad = u.adapter.factors.get(path)![f]!.slice();
      bad[0] = Number.NaN;
      const factors = new Map(u.adapter.factors);
      factors.set(path, { ...factors.get(path), [f]: bad });
      expectCode(() => round.add({ ...u, adapter: { ...u.adapter, factors } }), 'FL_ERR_AGGREGATION_INPUT', /NaN/);
      expect(round.count).toBe(0);
    });
  });

  it('adds noise of std z C / n to the average (statistical, seeded CSPRNG-quality source)', () => {
    const inner = createStrategy('fedavg', { fedavg: { noise: 'off' } });
    const big = [moduleSpec('m.q', 200, 200, 16), moduleSpec('m.v', 200, 200, 16)];
    const state = inner.init({ modules: big }, 'noise');
    // Every client sends the global adapter back: the deltas are zero, so the result is global + noise / n.
    const same: ClientUpdate[] = [0, 1, 2, 3].map((k) => ({ adapter: state.adapter!, numExamples: 1, source: `c${k}` }));
    const z = 1.3;
    const C = 0.5;
    const dp = new DpFedAvgStrategy(inner, { noiseMultiplier: z, clipNorm: C, random: seededTestSource('dp-noise') });
    const result = aggregate(dp, state, same);
    const global = flat(inner, state.adapter!);
    const noise = flat(inner, result.aggregate).map((x, i) => x - global[i]!);
    const N = noise.length; // 25,600 coordinates
    const mean = noise.reduce((t, x) => t + x, 0) / N;
    const std = Math.sqrt(noise.reduce((t, x) => t + (x - mean) ** 2, 0) / (N - 1));
    const expected = (z * C) / 4;
    expect((result.report as DpAggregationReport).dp.noiseStdOnAverage).toBeCloseTo(expected, 12);
    // The sample std of N Gaussians has relative sd 1/sqrt(2N) = 0.44%: 3% is ~7 sd.
    expect(Math.abs(std / expected - 1)).toBeLessThan(0.03);
    // The mean has sd expected / sqrt(N); allow 5 sd.
    expect(Math.abs(mean)).toBeLessThan((5 * expected) / Math.sqrt(N));
  });

  it('adaptive clipping: C <- C exp(-eta (b - gamma)), carried in the state to the next round', () => {
    const inner = createStrategy('ffa');
    const state0 = inner.init({ modules }, 'adaptive');
    const dp = new DpFedAvgStrategy(inner, { noiseMultiplier: 0, clipNorm: 0.1, adaptive: { countNoiseStd: 0 } });
    const s0 = dp.init({ modules }, 'adaptive');
    expect(s0.dpClipNorm).toBe(0.1);
    // Random B are far from zero: every update is clipped, b = 0, C grows by exp(0.2 * 0.5).
    const far = [0, 1, 2].map((k) => clientUpdate(inner, state0, `far${k}`, 1));
    const r1 = aggregate(dp, s0, far);
    const dp1 = (r1.report as DpAggregationReport).dp;
    expect(dp1.unclippedFraction).toBe(0);
    expect(dp1.nextClipNorm).toBeCloseTo(0.1 * Math.exp(0.1), 15);
    expect(r1.state.dpClipNorm).toBe(dp1.nextClipNorm);
    // Next round: clients return the global state (zero deltas): all unclipped, b = 1, C shrinks by exp(-0.1).
    const near = [0, 1].map((k) => ({ adapter: r1.state.adapter!, numExamples: 1, source: `near${k}` }));
    const r2 = aggregate(dp, r1.state, near);
    const dp2 = (r2.report as DpAggregationReport).dp;
    expect(dp2.clipNorm).toBe(dp1.nextClipNorm);
    expect(dp2.unclippedFraction).toBe(1);
    expect(dp2.nextClipNorm).toBeCloseTo(dp1.nextClipNorm! * Math.exp(-0.1), 15);
  });

  it('adaptive clipping keeps the overall noise multiplier: z_Delta = (z^-2 - (2 sigma_b)^-2)^(-1/2)', () => {
    expect(updateNoiseMultiplier(1, 1)).toBeCloseTo(1 / Math.sqrt(0.75), 15);
    expect(updateNoiseMultiplier(0, 0)).toBe(0);
    expectCode(() => updateNoiseMultiplier(2, 1), 'FL_ERR_PRIVACY_ARGUMENT', /countNoiseStd/);
  });

  it('summed deltas (client-side clipping): adds N(0, (z C)^2) to the sum, then the inner step', () => {
    const inner = createStrategy('fedsb');
    const state = inner.init({ modules }, 'sums');
    const g = inner.trainableVectors(state.adapter!);
    const sums = g.map((v) => ({ path: v.path, factor: v.factor, data: new Float64Array(v.data.length).fill(0.3) }));
    const plain = flat(inner, inner.aggregateSummedDeltas(state, sums, 3).aggregate);
    const quiet = new DpFedAvgStrategy(inner, { noiseMultiplier: 0, clipNorm: 1 });
    expect(flat(inner, quiet.aggregateSummedDeltas(state, sums, 3).aggregate)).toEqual(plain);
    const noisy = new DpFedAvgStrategy(inner, { noiseMultiplier: 2, clipNorm: 1, random: seededTestSource('sums') });
    const out = flat(inner, noisy.aggregateSummedDeltas(state, sums, 3).aggregate);
    expect(out.some((x, i) => Math.abs(x - plain[i]!) > 1e-3)).toBe(true);
    expect(sums[0]!.data[0]).toBe(0.3); // the caller's sums are not mutated
  });

  it('summed deltas under adaptive clipping: the noise is z times the ADAPTED C of the state, not C0 (issue 11)', () => {
    const inner = createStrategy('fedavg', { fedavg: { noise: 'off' } });
    const big = [moduleSpec('m.q', 200, 200, 16), moduleSpec('m.v', 200, 200, 16)];
    const state = { ...inner.init({ modules: big }, 'adapted'), dpClipNorm: 2.5 };
    const g = inner.trainableVectors(state.adapter!);
    const zeros = g.map((v) => ({ path: v.path, factor: v.factor, data: new Float64Array(v.data.length) }));
    const z = 0.8;
    const n = 4;
    const dp = new DpFedAvgStrategy(inner, { noiseMultiplier: z, clipNorm: 0.1, sampledClients: n, adaptive: {}, random: seededTestSource('adapted') });
    const global = flat(inner, state.adapter!);
    const noise = flat(inner, dp.aggregateSummedDeltas(state, zeros, n).aggregate).map((x, i) => x - global[i]!);
    const N = noise.length;
    const std = Math.sqrt(noise.reduce((t, x) => t + x * x, 0) / N);
    // the sample std of N = 25,600 normals has relative sd 0.44%; C0 = 0.1 would give 1/25 of this
    expect(Math.abs(std / ((z * 2.5) / n) - 1)).toBeLessThan(0.03);
  });

  it('needs a global state to take deltas', () => {
    const dp = new DpFedAvgStrategy(createStrategy('ffa'), { noiseMultiplier: 1 });
    expectCode(() => dp.begin(null), 'FL_ERR_AGGREGATION_INPUT', /global state/);
  });
});
