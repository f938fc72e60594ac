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
    expect(noisyUnclippedFraction(3, 4, 0)).toBe(0.75);
    const r = adaptiveClipRound([0.05, 0.2, 0.1], 0.1, { expectedClients: 4, countNoiseStd: 0 });
    expect(r).toEqual({ unclippedCount: 2, noisyFraction: 0.5, nextClipNorm: 0.1 });
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
    expect(() => noisyUnclippedFraction(1, 0, 1)).toThrow(/expectedClients must be a finite number > 0/);
  });
});
