/**
 * The contract every registered strategy keeps (docs/architecture.md, "Conventions", "Contract suites": one describe.each over all of
 * them): no input mutation, order independence, weights as example counts, refusal of malformed
 * updates with the right code and no effect on the running sum, the summed-delta hook.
 */
import { describe, expect, it } from 'vitest';
import { createStrategy, STRATEGY_NAMES } from '../../aggregation/registry.js';
import type { ClientUpdate, GlobalState, RoundResult, Strategy, SummedDelta } from '../../aggregation/strategy.js';
import type { Adapter } from '../../shared/adapter.js';
import { isFedloraError, type ErrorCode } from '../../shared/errors.js';
import { clientUpdate, denseDelta, float32Tolerance, referenceSum, relativeDifference, SMALL_MODULES, snapshot } from './fixtures.js';

const spec = { modules: SMALL_MODULES };

function aggregate(strategy: Strategy, state: GlobalState | null, updates: readonly ClientUpdate[]): RoundResult {
  const round = strategy.begin(state);
  for (const u of updates) round.add(u);
  return round.finish();
}

function expectCode(fn: () => unknown, code: ErrorCode): void {
  try {
    fn();
  } catch (e) {
    expect(isFedloraError(e, code), String(e)).toBe(true);
    return;
  }
  expect.unreachable(`expected ${code}`);
}

/** The dense s B (R) A of every module of an aggregate. */
function dense(adapter: Adapter): Float64Array[] {
  return adapter.layout.modules.map((m) => denseDelta(adapter, m.path));
}

function withFactor(u: ClientUpdate, path: string, factor: 'A' | 'B' | 'R', data: Float32Array): ClientUpdate {
  const factors = new Map(u.adapter.factors);
  factors.set(path, { ...factors.get(path), [factor]: data });
  return { ...u, adapter: { ...u.adapter, factors } };
}

describe.each(STRATEGY_NAMES)('strategy contract: %s', (name) => {
  const strategy = createStrategy(name, { fedavg: { noise: 'exact' } });
  const state = strategy.init(spec, 'contract-seed');
  const updates = [clientUpdate(strategy, state, 'a', 10), clientUpdate(strategy, state, 'b', 30), clientUpdate(strategy, state, 'c', 5)];
  const trainedFactor = strategy.trainable[strategy.trainable.length - 1]!;
  const path = SMALL_MODULES[1]!.path;

  it('plans every client with the trainable factors the strategy declares', () => {
    const plans = strategy.plan(state, [{ id: 'x' }, { id: 'y' }]);
    expect(plans.map((p) => p.clientId)).toEqual(['x', 'y']);
    for (const p of plans) {
      expect(p.trainable).toEqual(strategy.trainable);
      expect(p.modules.map((m) => m.path)).toEqual(SMALL_MODULES.map((m) => m.path));
    }
  });

  it('never mutates its inputs (updates and global state)', () => {
    const before = updates.map((u) => snapshot(u.adapter));
    const globalBefore = state.adapter ? snapshot(state.adapter) : null;
    const result = aggregate(strategy, state, updates);
    // The aggregate's trainable factors are new arrays: writing into them must not reach the inputs.
    // (Frozen factors are shared with the global state on purpose: adapters are treated as immutable.)
    for (const f of result.aggregate.factors.values()) for (const k of strategy.trainable) f[k]?.fill(7);
    expect(updates.map((u) => snapshot(u.adapter))).toEqual(before.map((b) => b));
    if (globalBefore) expect(snapshot(state.adapter!)).toEqual(globalBefore);
  });

  it('gives the same aggregate whatever order the updates arrive in', () => {
    const forward = dense(aggregate(strategy, state, updates).aggregate);
    const backward = dense(aggregate(strategy, state, [...updates].reverse()).aggregate);
    // float64 running sums: the orders differ by ~1e-16 before the final float32 rounding.
    forward.forEach((f, i) => expect(relativeDifference(backward[i]!, f)).toBeLessThan(1e-6));
  });

  it('weighs by example counts: weight 3 equals three copies of weight 1', () => {
    const heavy = aggregate(strategy, state, [{ ...updates[0]!, numExamples: 3 }, { ...updates[1]!, numExamples: 1 }]);
    const copies = aggregate(strategy, state, [updates[0]!, updates[0]!, updates[0]!, updates[1]!].map((u) => ({ ...u, numExamples: 1 })));
    const a = dense(heavy.aggregate);
    const b = dense(copies.aggregate);
    a.forEach((x, i) => expect(relativeDifference(x, b[i]!)).toBeLessThan(1e-6));
    expect(heavy.report.totalExamples).toBe(4);
    expect(heavy.report.clients).toBe(2);
  });

  it('with the job state and without (the CLI) gives the same aggregate', () => {
    const withState = dense(aggregate(strategy, state, updates).aggregate);
    const without = dense(aggregate(strategy, null, updates).aggregate);
    withState.forEach((x, i) => expect(relativeDifference(without[i]!, x)).toBeLessThan(1e-6));
  });

  if (name !== 'fedavg') {
    it('is exact: s B (R) A of the aggregate equals sum_k p_k s_k B_k (R_k) A_k to float32 rounding', () => {
      const result = aggregate(strategy, state, updates);
      for (const m of SMALL_MODULES) {
        expect(relativeDifference(denseDelta(result.aggregate, m.path), referenceSum(updates, m.path))).toBeLessThanOrEqual(float32Tolerance(updates, m.path));
      }
    });
  }

  it('refuses a NaN, a wrong length, a missing module, an extra module and a bad weight, and goes on unchanged', () => {
    const round = strategy.begin(state);
    round.add(updates[0]!);
    const data = updates[1]!.adapter.factors.get(path)![trainedFactor]!;
    const nan = data.slice();
    nan[1] = Number.NaN;
    expectCode(() => round.add(withFactor(updates[1]!, path, trainedFactor, nan)), 'FL_ERR_AGGREGATION_INPUT');
    expectCode(() => round.add(withFactor(updates[1]!, path, trainedFactor, data.subarray(1))), 'FL_ERR_AGGREGATION_INPUT');
    const missing: ClientUpdate = { ...updates[1]!, adapter: { layout: { ...updates[1]!.adapter.layout, modules: updates[1]!.adapter.layout.modules.slice(0, 1) }, factors: updates[1]!.adapter.factors } };
    expectCode(() => round.add(missing), 'FL_ERR_AGGREGATION_INPUT');
    const extraModule = { ...SMALL_MODULES[0]!, path: 'model.layers.9.mlp.up_proj' };
    const extraFactors = new Map(updates[1]!.adapter.factors);
    extraFactors.set(extraModule.path, updates[1]!.adapter.factors.get(SMALL_MODULES[0]!.path)!);
    const extra: ClientUpdate = { ...updates[1]!, adapter: { layout: { ...updates[1]!.adapter.layout, modules: [...updates[1]!.adapter.layout.modules, extraModule] }, factors: extraFactors } };
    expectCode(() => round.add(extra), 'FL_ERR_AGGREGATION_INPUT');
    expectCode(() => round.add({ ...updates[1]!, numExamples: 0 }), 'FL_ERR_AGGREGATION_INPUT');
    expectCode(() => round.add({ ...updates[1]!, numExamples: Number.NaN }), 'FL_ERR_AGGREGATION_INPUT');
    // checkUpdate (for wrappers) refuses the same updates with the same codes, and accepts good ones.
    for (const bad of [withFactor(updates[1]!, path, trainedFactor, nan), missing, extra, { ...updates[1]!, numExamples: 0 }]) {
      expectCode(() => strategy.checkUpdate(state, bad), 'FL_ERR_AGGREGATION_INPUT');
    }
    for (const u of updates) strategy.checkUpdate(state, u);
    round.add(updates[1]!);
    round.add(updates[2]!);
    expect(round.count).toBe(3);
    const clean = dense(aggregate(strategy, state, updates).aggregate);
    dense(round.finish().aggregate).forEach((x, i) => expect(relativeDifference(x, clean[i]!)).toBe(0));
  });

  it('refuses a NaN in any module and factor without changing the sum (fused check of the staged add)', () => {
    const clean = dense(aggregate(strategy, state, updates).aggregate);
    for (const m of SMALL_MODULES) {
      for (const factor of strategy.trainable) {
        const round = strategy.begin(state);
        round.add(updates[0]!);
        const bad = updates[1]!.adapter.factors.get(m.path)![factor]!.slice();
        bad[bad.length - 1] = Number.NEGATIVE_INFINITY;
        expectCode(() => round.add(withFactor(updates[1]!, m.path, factor, bad)), 'FL_ERR_AGGREGATION_INPUT');
        round.add(updates[1]!);
        round.add(updates[2]!);
        dense(round.finish().aggregate).forEach((x, i) => expect(relativeDifference(x, clean[i]!)).toBe(0));
      }
    }
  });

  it('refuses an update that lists a module twice', () => {
    const u = updates[0]!;
    const twice: ClientUpdate = { ...u, adapter: { ...u.adapter, layout: { ...u.adapter.layout, modules: [...u.adapter.layout.modules, u.adapter.layout.modules[0]!] } } };
    expectCode(() => strategy.begin(state).add(twice), 'FL_ERR_AGGREGATION_INPUT');
  });

  it('names the source and the PEFT tensor in the error', () => {
    const data = updates[1]!.adapter.factors.get(path)![trainedFactor]!;
    const nan = data.slice();
    nan[0] = Number.POSITIVE_INFINITY;
    expect(() => strategy.begin(state).add(withFactor(updates[1]!, path, trainedFactor, nan))).toThrow(
      `client-b: base_model.model.${path}.${trainedFactor === 'R' ? 'fedsb_R' : `lora_${trainedFactor}`}.weight holds NaN or Infinity`,
    );
  });

  it('refuses finish() with no updates (FL_ERR_NO_UPDATES), and add() after finish()', () => {
    expectCode(() => strategy.begin(state).finish(), 'FL_ERR_NO_UPDATES');
    const round = strategy.begin(state);
    round.add(updates[0]!);
    round.finish();
    expectCode(() => round.add(updates[1]!), 'FL_ERR_AGGREGATION_INPUT');
  });

  it('advances the state by one round', () => {
    const result = aggregate(strategy, state, updates);
    expect(result.state.round).toBe(state.round + 1);
    expect(result.state.strategy).toBe(name);
    expect(result.state.seed).toBe(state.seed);
  });

  if (strategy.aggregateIsSum) {
    it('aggregates summed deltas: global + sum/count equals the equal-weight aggregate', () => {
      const equal = updates.map((u) => ({ ...u, numExamples: 1 }));
      const globalVectors = strategy.trainableVectors(state.adapter!);
      const sums: SummedDelta[] = globalVectors.map((g) => ({ path: g.path, factor: g.factor, data: new Float64Array(g.data.length) }));
      for (const u of equal) {
        strategy.trainableVectors(u.adapter).forEach((v, i) => {
          for (let j = 0; j < v.data.length; j++) sums[i]!.data[j]! += v.data[j]! - globalVectors[i]!.data[j]!;
        });
      }
      const viaSums = dense(strategy.aggregateSummedDeltas(state, sums, equal.length).aggregate);
      const direct = dense(aggregate(strategy, state, equal).aggregate);
      viaSums.forEach((x, i) => expect(relativeDifference(x, direct[i]!)).toBeLessThan(1e-6));
      expectCode(() => strategy.aggregateSummedDeltas(state, sums.slice(1), 3), 'FL_ERR_AGGREGATION_INPUT');
    });
  } else {
    it('refuses summed deltas with FL_ERR_NOT_A_SUM, naming client-side DP-SGD', () => {
      expectCode(() => strategy.aggregateSummedDeltas(state, [], 1), 'FL_ERR_NOT_A_SUM');
      expect(() => strategy.aggregateSummedDeltas(state, [], 1)).toThrow(/DP-SGD/);
    });
  }

  if (name === 'ffa' || name === 'fedsb') {
    it('refuses an update whose frozen factor differs (FL_ERR_FROZEN_MISMATCH), and a different rank', () => {
      const frozen = name === 'ffa' ? (['A'] as const) : (['A', 'B'] as const);
      for (const factor of frozen) {
        const other = state.adapter!.factors.get(path)![factor]!.slice();
        other[0] = other[0]! + 1e-6;
        expectCode(() => strategy.begin(state).add(withFactor(updates[0]!, path, factor, other)), 'FL_ERR_FROZEN_MISMATCH');
        expectCode(() => strategy.checkUpdate(state, withFactor(updates[0]!, path, factor, other)), 'FL_ERR_FROZEN_MISMATCH');
        // Without a state, the first update's frozen factors are the reference.
        const round = strategy.begin(null);
        round.add(updates[0]!);
        expectCode(() => round.add(withFactor(updates[1]!, path, factor, other)), 'FL_ERR_FROZEN_MISMATCH');
      }
      const u = updates[0]!;
      const wrongRank = { ...u, adapter: { ...u.adapter, layout: { ...u.adapter.layout, modules: u.adapter.layout.modules.map((m) => ({ ...m, rank: m.rank + 1 })) } } };
      expectCode(() => strategy.begin(state).add(wrongRank), 'FL_ERR_AGGREGATION_INPUT');
    });
  }
});
