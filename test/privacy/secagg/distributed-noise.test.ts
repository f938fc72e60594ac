import { describe, it, expect } from 'vitest';
import { addNoiseShare, effectiveNoiseMultiplier, noiseShareStd, secureRoundMechanism } from '../../../privacy/secagg/distributed-noise.js';
import { seededTestSource } from '../../../privacy/random.js';
import { isFedloraError } from '../../../shared/errors.js';
import { mechanismReference } from '../mechanism-reference.js';

describe('distributed DP noise shares', () => {
  it('h shares of std z C / sqrt(h) sum to noise of std z C (empirical variance, 4-sigma bound)', () => {
    const z = 1.1;
    const C = 0.5;
    const h = 16;
    const m = 20_000;
    const random = seededTestSource('noise-shares');
    const sum = new Float64Array(m);
    for (let k = 0; k < h; k++) {
      const share = new Float64Array(m);
      addNoiseShare(share, z, C, h, random);
      for (let i = 0; i < m; i++) sum[i]! += share[i]!;
    }
    const variance = sum.reduce((s, x) => s + x * x, 0) / m;
    // The sample variance of m normals has relative std sqrt(2 / m) = 1%; 4 sigma is 4%.
    expect(Math.abs(variance / (z * C) ** 2 - 1)).toBeLessThan(4 * Math.sqrt(2 / m));
    expect(noiseShareStd(z, C, h)).toBeCloseTo((z * C) / 4, 15);
  });

  it('the effective multiplier counts only the OTHER honest clients guaranteed to be in the sum', () => {
    // the protected client's own share leaves with it (add/remove adjacency): 99 of 100 shares count
    expect(effectiveNoiseMultiplier(1, 100, 100, 100)).toBeCloseTo(Math.sqrt(0.99), 15);
    expect(effectiveNoiseMultiplier(1, 10, 10, 10)).toBeCloseTo(0.9486832980505138, 15); // issue 11: about 0.949 z
    expect(effectiveNoiseMultiplier(1, 100, 100, 75)).toBeCloseTo(Math.sqrt(0.74), 15); // 25 dropped
    expect(effectiveNoiseMultiplier(2, 100, 80, 100)).toBeCloseTo(2 * Math.sqrt(79 / 80), 15); // 20 dishonest, every share in the sum
    expect(effectiveNoiseMultiplier(2, 100, 80, 90)).toBeCloseTo(2 * Math.sqrt(69 / 80), 15); // 10 gone, all could be honest
    expect(effectiveNoiseMultiplier(2, 100, 80, 21)).toBe(0); // nothing guaranteed
    expect(() => effectiveNoiseMultiplier(1, 10, 11, 10)).toThrow(/minHonestClients/);
  });

  it('books a user-level round: q = clients per round / clients, sigma = z_eff, one step', () => {
    expect(secureRoundMechanism(0.9, 50, 1000)).toEqual({ q: 0.05, sigma: 0.9, steps: 1 });
    try {
      noiseShareStd(1, 1, 0);
      expect.unreachable();
    } catch (e) {
      expect(isFedloraError(e, 'FL_ERR_PRIVACY_ARGUMENT')).toBe(true);
    }
  });
});

describe('distributed DP: the noise that protects one client (issue 11)', () => {
  it('matches an enumeration of every placement of the dishonest clients (python, protected client honest)', () => {
    const cases: Array<{ n: number; h: number; s: number }> = [];
    for (const [n, h] of [[10, 10], [10, 7], [8, 5], [12, 9], [6, 1]] as const) for (let s = 1; s <= n; s++) cases.push({ n, h, s });
    const fractions = mechanismReference({ honest: cases }).honest;
    cases.forEach((c, k) => {
      const got = effectiveNoiseMultiplier(1.3, c.n, c.h, c.s);
      expect(Math.abs(got - 1.3 * Math.sqrt(fractions[k]!)), JSON.stringify(c)).toBeLessThan(1e-14);
    });
    expect(fractions[9]).toBeCloseTo(0.9, 15); // n = h = s = 10
  });
});
