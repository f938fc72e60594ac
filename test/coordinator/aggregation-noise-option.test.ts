/**
 * fedavg's aggregation-noise figure is opt-in: a job without `aggregationNoise` aggregates without
 * the sketch (it costs several times the aggregation), `aggregationNoise: 'sketch'` reports it, and a
 * strategy whose product is exact refuses the option.
 */
import { describe, expect, it } from 'vitest';
import { jobStrategy, strategySpecOf } from '../../coordinator/jobs.js';
import { JobSpecSchema } from '../../shared/protocol/job-spec.js';
import { clientUpdate } from '../aggregation/fixtures.js';

const body = (extra: Record<string, unknown>) => ({
  strategy: 'fedavg',
  rounds: 1,
  clientsPerRound: 2,
  minClients: 2,
  model: { sha256: 'a'.repeat(64), targetModules: ['q_proj'] },
  rank: 2,
  ...extra,
});
const layout = [{ path: 'model.layers.0.self_attn.q_proj', outFeatures: 6, inFeatures: 5 }];

function roundNoise(extra: Record<string, unknown>) {
  const spec = JobSpecSchema.parse(body(extra));
  const strategy = jobStrategy(spec);
  const state = strategy.init(strategySpecOf(spec, layout), 'noise-option');
  const round = strategy.begin(state);
  round.add(clientUpdate(strategy, state, 'a', 3));
  round.add(clientUpdate(strategy, state, 'b', 5));
  return round.finish().report.noise;
}

describe('job spec aggregationNoise', () => {
  it('is off by default: no figure, no sketch', () => {
    expect(roundNoise({})).toBeUndefined();
    expect(roundNoise({ aggregationNoise: 'off' })).toBeUndefined();
  });

  it("'sketch' reports the figure per module and overall", () => {
    const noise = roundNoise({ aggregationNoise: 'sketch' });
    expect(noise?.method).toBe('sketch');
    expect(noise!.overall).toBeGreaterThan(0); // two different clients: averaging A and B is inexact
    expect(Object.keys(noise!.perModule)).toEqual([layout[0]!.path]);
  });

  it('is refused for a strategy whose aggregate product is exact', () => {
    const r = JobSpecSchema.safeParse(body({ strategy: 'ffa', aggregationNoise: 'sketch' }));
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path).toEqual(['aggregationNoise']);
    expect(r.error!.issues[0]!.message).toMatch(/no aggregation noise to estimate/);
    expect(JobSpecSchema.safeParse(body({ aggregationNoise: 'exact' })).success).toBe(false);
  });
});
