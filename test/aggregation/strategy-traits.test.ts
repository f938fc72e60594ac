/**
 * The strategy traits table (shared/protocol/job-spec.ts STRATEGY_TRAITS) against the strategies
 * themselves: it covers every registered strategy, and each trait says what the implementation
 * does, so the checks that read a trait instead of a name (job spec, coordinator, simulations,
 * demo) stay true when a strategy is added or changed.
 */
import { describe, expect, it } from 'vitest';
import { FedSbGradientSum } from '../../aggregation/fedsb-init.js';
import { createStrategy, STRATEGY_NAMES as REGISTERED } from '../../aggregation/registry.js';
import { JobSpecSchema, STRATEGY_NAMES, STRATEGY_TRAITS } from '../../shared/protocol/job-spec.js';
import { clientUpdate, denseDelta, float32Tolerance, referenceSum, relativeDifference, SMALL_MODULES } from './fixtures.js';

const spec = { modules: SMALL_MODULES };

function jobBody(strategy: string, extra: Record<string, unknown> = {}): unknown {
  return { strategy, rounds: 2, clientsPerRound: 2, minClients: 2, model: { sha256: 'a'.repeat(64), targetModules: ['q_proj', 'v_proj'] }, rank: 2, seed: 1, ...extra };
}

describe('strategy traits table', () => {
  it('has exactly one entry per strategy, in the job spec and in the registry', () => {
    expect([...REGISTERED]).toEqual([...STRATEGY_NAMES]);
    expect(Object.keys(STRATEGY_TRAITS).sort()).toEqual([...STRATEGY_NAMES].sort());
  });
});

describe.each(STRATEGY_NAMES)('strategy traits agree with the implementation: %s', (name) => {
  const traits = STRATEGY_TRAITS[name];
  const strategy = createStrategy(name, { fedavg: { noise: 'exact' } });
  const state = strategy.init(spec, 'traits-seed');

  it('variant, trainable factors and aggregateIsSum are the strategy\'s own', () => {
    expect(traits.variant).toBe(strategy.variant);
    expect([...traits.trainable]).toEqual([...strategy.trainable]);
    expect(traits.aggregateIsSum).toBe(strategy.aggregateIsSum);
  });

  it('aggregateIsSum: a sum strategy takes summed deltas (aggregateSummedDeltas), any other refuses them', () => {
    if (traits.aggregateIsSum) {
      const sums = strategy.trainableVectors(state.adapter!).map((v) => ({ path: v.path, factor: v.factor, data: new Float64Array(v.data.length) }));
      const next = strategy.aggregateSummedDeltas(state, sums, 2).state;
      expect(next.round).toBe(state.round + 1);
    } else {
      expect(() => strategy.aggregateSummedDeltas(state, [], 1)).toThrow(/FL_ERR_NOT_A_SUM/);
    }
    const secure = JobSpecSchema.safeParse(jobBody(name, { secureAggregation: { enabled: true } }));
    expect(secure.success).toBe(traits.aggregateIsSum);
  });

  it('heterogeneousRanks: how the plan treats a client asking for a smaller or a larger rank', () => {
    const jobRanks = SMALL_MODULES.map((m) => m.rank);
    const ranksOf = (rank: number): number[] => strategy.plan(state, [{ id: 'x', rank }])[0]!.modules.map((m) => m.rank);
    const larger = (): number[] => ranksOf(4);
    switch (traits.heterogeneousRanks) {
      case 'none':
        expect(ranksOf(1)).toEqual(jobRanks);
        expect(larger()).toEqual(jobRanks);
        break;
      case 'zero-padded':
        expect(ranksOf(1)).toEqual([1, 1]);
        expect(larger).toThrow(/FL_ERR_AGGREGATION_INPUT/);
        break;
      case 'stacked':
        expect(ranksOf(1)).toEqual([1, 1]);
        expect(larger()).toEqual([4, 4]);
        break;
    }
    expect(JobSpecSchema.safeParse(jobBody(name, { ranks: [2, 1] })).success).toBe(traits.heterogeneousRanks !== 'none');
  });

  it('freshEachRound: clients start a fresh LoRA (merging earlier rounds) instead of the global adapter', () => {
    for (const p of strategy.plan(state, [{ id: 'x' }, { id: 'y' }])) expect(p.start).toBe(traits.freshEachRound ? 'fresh' : 'global');
  });

  it('exactProduct: s B A of the aggregate is the weighted sum of the clients\' s B A, or is not', () => {
    const updates = [clientUpdate(strategy, state, 'a', 10), clientUpdate(strategy, state, 'b', 30), clientUpdate(strategy, state, 'c', 5)];
    const round = strategy.begin(state);
    for (const u of updates) round.add(u);
    const aggregate = round.finish().aggregate;
    for (const m of SMALL_MODULES) {
      const exact = relativeDifference(denseDelta(aggregate, m.path), referenceSum(updates, m.path)) <= float32Tolerance(updates, m.path);
      expect(exact, m.path).toBe(traits.exactProduct);
    }
  });

  it('gradientInit: the gradient init phase makes this strategy\'s state, and only its job spec takes fedsb options', () => {
    if (traits.gradientInit) {
      const sum = new FedSbGradientSum(spec, '1', 0.01);
      const gradients = new Map(SMALL_MODULES.map((m) => [m.path, Float32Array.from({ length: m.outFeatures * m.inFeatures }, (_, i) => Math.sin(i + 1))]));
      sum.add({ adapter: { layout: { variant: traits.variant, modules: SMALL_MODULES }, factors: new Map() }, numExamples: 3, source: 'g', gradients });
      const init = sum.finish().state;
      expect(init.strategy).toBe(name);
      expect(init.adapter!.layout.variant).toBe(traits.variant);
    }
    const parsed = JobSpecSchema.safeParse(jobBody(name, { fedsb: { init: 'gradient' } }));
    expect(parsed.success, parsed.success ? '' : parsed.error.message).toBe(traits.gradientInit);
  });
});

