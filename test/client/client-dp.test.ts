/**
 * Issue 11 item 4: a client's target epsilon covers Fed-SB's gradient-init release as well as its
 * DP-SGD steps; the reported epsilon (clientEpsilonWithRelease) is checked against an independent
 * mpmath composition (test/privacy/mechanism-reference.py).
 */
import { describe, expect, it } from 'vitest';
import { clientDpSettings, clientEpsilon, clientEpsilonWithRelease } from '../../client/agent/client-dp.js';
import { PlanSchema, type Plan } from '../../shared/protocol/events.js';
import { DEFAULT_DELTA } from '../../shared/protocol/job-spec.js';
import { epsilonOfEvents } from '../../privacy/accountant.js';
import { mechanismReference, referenceOrders } from '../privacy/mechanism-reference.js';

const module = { path: 'model.layers.0.self_attn.q_proj', outFeatures: 6, inFeatures: 5, rank: 2, alpha: 2 };

function plan(clientDp: Record<string, unknown>): Plan {
  return PlanSchema.parse({
    strategy: 'fedsb',
    variant: 'fedsb',
    rank: 2,
    alpha: 2,
    modules: [module],
    trainable: ['R'],
    start: 'global',
    updateTensors: [{ name: `base_model.model.${module.path}.fedsb_R.weight`, shape: [2, 2] }],
    training: { epochs: 1, batchSize: 16, lr: 0.01, schedule: 'constant', warmupSteps: 0, weightDecay: 0 },
    seed: 3,
    clientDp,
  });
}

describe('client DP with the Fed-SB init release (issue 11)', () => {
  it('calibrates over the release and the DP-SGD steps: the reported epsilon stays within the target, against mpmath', () => {
    const target = 3;
    const release = 4;
    const s = clientDpSettings(plan({ clip: 1, targetEpsilon: target, delta: 1e-5, rounds: 5, initReleaseNoiseMultiplier: release }), 64)!;
    const steps = s.stepsPerRound * 5;
    const reported = clientEpsilonWithRelease(s, steps, release);
    expect(reported).toBeLessThanOrEqual(target);
    const events = [{ q: 1, sigma: release, steps: 1 }, { q: s.samplingRate, sigma: s.noiseMultiplier, steps }];
    const less = [{ q: 1, sigma: release, steps: 1 }, { q: s.samplingRate, sigma: s.noiseMultiplier * 0.999, steps }];
    const orders = referenceOrders(epsilonOfEvents(events, 1e-5).order);
    const ref = mechanismReference({ epsilon: [{ events, delta: 1e-5, orders }, { events: less, delta: 1e-5, orders }] }).epsilon;
    expect(ref[0]!.epsilon).toBeLessThanOrEqual(target * (1 + 1e-9));
    expect(Math.abs(reported - ref[0]!.epsilon) / ref[0]!.epsilon).toBeLessThan(1e-9);
    // tight: 0.1% less noise misses the target
    expect(ref[1]!.epsilon).toBeGreaterThan(target);
    // calibrating without the release (what the plan gave before) overshoots the target once the release is composed
    const without = clientDpSettings(plan({ clip: 1, targetEpsilon: target, delta: 1e-5, rounds: 5 }), 64)!;
    expect(clientEpsilon(without, steps)).toBeLessThanOrEqual(target);
    expect(clientEpsilonWithRelease(without, steps, release)).toBeGreaterThan(target);
    expect(s.noiseMultiplier).toBeGreaterThan(without.noiseMultiplier);
  });
});

describe('client DP delta', () => {
  it('a plan without delta calibrates at the job spec\'s DEFAULT_DELTA, not a delta of its own', () => {
    const implicit = clientDpSettings(plan({ clip: 1, targetEpsilon: 2, rounds: 5 }), 64)!;
    const explicit = clientDpSettings(plan({ clip: 1, targetEpsilon: 2, delta: DEFAULT_DELTA, rounds: 5 }), 64)!;
    const looser = clientDpSettings(plan({ clip: 1, targetEpsilon: 2, delta: 1e-3, rounds: 5 }), 64)!;
    expect(implicit.delta).toBe(DEFAULT_DELTA);
    expect(implicit.noiseMultiplier).toBe(explicit.noiseMultiplier);
    // delta matters to the calibration, so the equality above is not vacuous
    expect(looser.noiseMultiplier).toBeLessThan(implicit.noiseMultiplier);
  });
});
