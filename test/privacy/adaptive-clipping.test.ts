import { describe, expect, it } from 'vitest';
import {
  ADAPTIVE_CLIPPING_DEFAULTS,
  adaptiveClipRound,
  defaultCountNoiseStd,
  effectiveNoiseMultiplier,
  nextClipNorm,
  noisyUnclippedFraction,
  unclippedBit,
  updateNoiseMultiplier,
} from '../../privacy/adaptive-clipping.js';
import { seededTestSource, uniform53 } from '../../privacy/random.js';
import { epsilonOfSampledGaussian } from '../../privacy/accountant.js';
import { mechanismReference, referenceOrders } from './mechanism-reference.js';

describe('adaptive clipping (Andrew et al. 2021)', () => {
  it('has the paper defaults: C0 = 0.1, gamma = 0.5, eta_C = 0.2, sigma_b = m / 20', () => {
    expect(ADAPTIVE_CLIPPING_DEFAULTS).toEqual({ initialClipNorm: 0.1, targetUnclippedQuantile: 0.5, clipLearningRate: 0.2 });
    expect(defaultCountNoiseStd(100)).toBe(5);
    expect(Object.isFrozen(ADAPTIVE_CLIPPING_DEFAULTS)).toBe(true);
  });

  it('the geometric update, hand-computed: C exp(-eta (b - gamma))', () => {
    expect(nextClipNorm(1, 0.5)).toBe(1); // at the target: unchanged
    expect(nextClipNorm(1, 1)).toBeCloseTo(Math.exp(-0.1), 15); // all unclipped: shrink
    expect(nextClipNorm(2, 0)).toBeCloseTo(2 * Math.exp(0.1), 15); // all clipped: grow
    expect(nextClipNorm(1, 0.9, { targetUnclippedQuantile: 0.9, clipLearningRate: 1 })).toBe(1);
    expect(nextClipNorm(1, 0, { targetUnclippedQuantile: 0.8, clipLearningRate: 0.5 })).toBeCloseTo(Math.exp(0.4), 15);
  });

  it('bits count norms <= C as unclipped; the fraction is over the expected clients', () => {
    expect([unclippedBit(0.1, 0.1), unclippedBit(0.1000001, 0.1), unclippedBit(0, 0.1)]).toEqual([1, 0, 1]);
    expect(noisyUnclippedFraction(3, 4, 4, 0)).toBe(0.75);
    // centred: (2 - 3/2) / 4 + 1/2 = 0.625 (the expected-count estimate of 2/3)
    const r = adaptiveClipRound([0.05, 0.2, 0.1], 0.1, { expectedClients: 4, countNoiseStd: 0 });
    expect(r).toEqual({ unclippedCount: 2, noisyFraction: 0.625, nextClipNorm: 0.1 * Math.exp(-0.2 * 0.125) });
  });

  it('update noise multiplier: z_Delta = (z^-2 - (2 sigma_b)^-2)^-1/2, and back', () => {
    // z = 1, sigma_b = 1: (1 - 1/4)^-1/2 = 2 / sqrt(3)
    expect(updateNoiseMultiplier(1, 1)).toBeCloseTo(2 / Math.sqrt(3), 14);
    for (const [z, sb] of [[0.8, 5], [1.1, 0.6], [3, 10]] as const) {
      expect(effectiveNoiseMultiplier(updateNoiseMultiplier(z, sb), sb)).toBeCloseTo(z, 12);
    }
    // TensorFlow Federated's adaptive_clip_noise_params(1.0, 100): sigma_b = 0.05 * 100 = 5,
    // value noise multiplier (1 - (2*5)^-2)^-1/2 = 1.0050378152592121 (python3: (1 - 0.01) ** -0.5)
    expect(updateNoiseMultiplier(1, defaultCountNoiseStd(100))).toBeCloseTo(1.0050378152592121, 15);
    expect(updateNoiseMultiplier(0, 1)).toBe(0);
    expect(() => updateNoiseMultiplier(2, 1)).toThrow(/FL_ERR_PRIVACY_ARGUMENT: countNoiseStd must be > noiseMultiplier \/ 2 = 1/);
  });

  it('tracks the target quantile: norms uniform on [0, 2] (median 1) from C0 = 0.1', () => {
    const data = seededTestSource('norms');
    const noise = seededTestSource('count-noise');
    const m = 100;
    let c: number = ADAPTIVE_CLIPPING_DEFAULTS.initialClipNorm;
    const late: number[] = [];
    for (let round = 0; round < 300; round++) {
      const norms = Array.from({ length: m }, () => 2 * uniform53(data));
      c = adaptiveClipRound(norms, c, { expectedClients: m, source: noise }).nextClipNorm;
      if (round >= 200) late.push(c);
    }
    const mean = late.reduce((a, b) => a + b, 0) / late.length;
    // Deterministic (seeded) run. The paper's geometric update reaches ln(10)/(0.2*0.5) ~ 23 rounds
    // from 0.1 to 1 at best, then hovers: the per-round noise in b~ is ~ sqrt(0.25/m + 1/400) = 0.07.
    expect(mean).toBeGreaterThan(0.85);
    expect(mean).toBeLessThan(1.15);
  });

  it('validates its arguments', () => {
    expect(() => nextClipNorm(0, 0.5)).toThrow(/clipNorm must be a finite number > 0, got 0/);
    expect(() => nextClipNorm(1, Number.NaN)).toThrow(/noisyFraction must be finite, got NaN/);
    expect(() => nextClipNorm(1, 0.5, { targetUnclippedQuantile: 1.5 })).toThrow(/targetUnclippedQuantile must be in \[0, 1\], got 1.5/);
    expect(() => nextClipNorm(1, 0.5, { clipLearningRate: 0 })).toThrow(/clipLearningRate must be a finite number > 0/);
    expect(() => noisyUnclippedFraction(1, 1, 0, 1)).toThrow(/expectedClients must be a finite number > 0/);
    expect(() => noisyUnclippedFraction(3, 2, 4, 1)).toThrow(/reportedClients must be an integer >= unclippedCount/);
  });
});

describe('adaptive clipping: the multiplier a round really spends (issue 11)', () => {
  /** m * b~ for these bits and a fresh copy of one seeded noise source, so two calls share the draw. */
  const released = (count: number, reported: number, m: number, sb: number, seed: string) => m * noisyUnclippedFraction(count, reported, m, sb, seededTestSource(seed)) - m / 2;

  /** The largest change of the released count when one client (bit 0 or 1) is added, same noise draw. */
  function measuredCountSensitivity(): number {
    const bits = seededTestSource('bits');
    let worst = 0;
    for (let trial = 0; trial < 40; trial++) {
      const reported = 5 + Math.floor(uniform53(bits) * 30);
      let count = 0;
      for (let i = 0; i < reported; i++) count += uniform53(bits) < 0.5 ? 1 : 0;
      for (const bit of [0, 1]) {
        const without = released(count, reported, 20, 1, `draw${trial}`);
        const withIt = released(count + bit, reported + 1, 20, 1, `draw${trial}`);
        worst = Math.max(worst, Math.abs(withIt - without));
      }
    }
    return worst;
  }

  it('adding or removing one client moves the released count by 1/2 (centred bits), not 1', () => {
    expect(measuredCountSensitivity()).toBeCloseTo(0.5, 12);
  });

  it('n = 20, z = 1: the booked z equals the combined multiplier of both releases, against mpmath', () => {
    const z = 1;
    const sb = defaultCountNoiseStd(20);
    const zDelta = updateNoiseMultiplier(z, sb);
    const sensitivity = measuredCountSensitivity();
    const booked = effectiveNoiseMultiplier(zDelta, sb);
    const [real, rawBits] = mechanismReference({
      gaussians: [
        { releases: [{ sensitivity: 1, std: zDelta }, { sensitivity, std: sb }] },
        // what the 0/1 bits released before centring: sensitivity 1
        { releases: [{ sensitivity: 1, std: zDelta }, { sensitivity: 1, std: sb }] },
      ],
    }).gaussians as [number, number];
    expect(booked).toBeLessThanOrEqual(real * (1 + 1e-12));
    expect(Math.abs(booked - real)).toBeLessThan(1e-12);
    expect(rawBits).toBeCloseTo(0.756, 3);
    // 100 rounds at q = 0.1, delta 1e-5: the ledger's epsilon for the booked z against mpmath at the real one
    const ours = epsilonOfSampledGaussian(0.1, booked, 100, 1e-5);
    const ref = mechanismReference({
      epsilon: [
        { events: [{ q: 0.1, sigma: real, steps: 100 }], delta: 1e-5, orders: referenceOrders(ours.order) },
        { events: [{ q: 0.1, sigma: rawBits, steps: 100 }], delta: 1e-5, orders: referenceOrders(epsilonOfSampledGaussian(0.1, rawBits, 100, 1e-5).order) },
      ],
    }).epsilon;
    expect(Math.abs(ours.epsilon - ref[0]!.epsilon) / ref[0]!.epsilon).toBeLessThan(1e-9);
    expect(ours.epsilon).toBeCloseTo(7.9, 1);
    expect(ref[1]!.epsilon).toBeCloseTo(13.9, 1);
  });
});
