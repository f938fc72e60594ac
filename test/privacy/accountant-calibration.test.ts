/**
 * Calibration: the smallest sigma meeting a target epsilon. What must hold is checked directly
 * against the accountant: the returned sigma meets the target, the bracket's lower end misses
 * it, and the bracket is within the stated tolerance - so the answer errs only towards more noise.
 */
import { describe, expect, it } from 'vitest';
import { smallestSigma } from '../../privacy/calibration.js';
import { epsilonOfSampledGaussian } from '../../privacy/accountant.js';
import { isFedloraError } from '../../shared/errors.js';

describe('smallestSigma', () => {
  it.each([
    { q: 0.01, steps: 10_000, delta: 1e-5, epsilon: 1 },
    { q: 0.004, steps: 3_750, delta: 1e-5, epsilon: 3 },
    { q: 0.5, steps: 100, delta: 1e-5, epsilon: 3 }, // user-level FL: half the clients each round
    { q: 1, steps: 1, delta: 1e-5, epsilon: 0.5 }, // one plain Gaussian release
    { q: 0.1, steps: 50, delta: 1e-3, epsilon: 20 }, // a loose target: sigma below 1
  ])('meets the target and the bracket below misses it: %o', (req) => {
    const r = smallestSigma(req);
    const at = epsilonOfSampledGaussian(req.q, r.sigma, req.steps, req.delta);
    expect(at.epsilon).toBeLessThanOrEqual(req.epsilon);
    expect(at).toEqual({ epsilon: r.epsilon, order: r.order });
    expect(epsilonOfSampledGaussian(req.q, r.sigmaBelow, req.steps, req.delta).epsilon).toBeGreaterThan(req.epsilon);
    expect(r.sigma - r.sigmaBelow).toBeLessThanOrEqual(1e-9 * r.sigma);
    // the target is met closely, not by a wide margin (epsilon is continuous in sigma)
    expect(r.epsilon).toBeGreaterThan(req.epsilon * (1 - 1e-6));
  });

  it('the published Abadi et al. setting: sigma = 4 is about the noise for epsilon 1.26 under the classic conversion', () => {
    const r = smallestSigma({ q: 0.01, steps: 10_000, delta: 1e-5, epsilon: 1.26, conversion: 'classic' });
    expect(r.sigma).toBeGreaterThan(3.95);
    expect(r.sigma).toBeLessThanOrEqual(4);
  });

  it('a coarser tolerance takes fewer evaluations and still meets the target', () => {
    const fine = smallestSigma({ q: 0.02, steps: 500, delta: 1e-5, epsilon: 2 });
    const coarse = smallestSigma({ q: 0.02, steps: 500, delta: 1e-5, epsilon: 2, relativeTolerance: 1e-3 });
    expect(coarse.evaluations).toBeLessThan(fine.evaluations);
    expect(coarse.sigma).toBeGreaterThanOrEqual(fine.sigma);
    expect(coarse.sigma).toBeLessThanOrEqual(fine.sigma * (1 + 1e-3));
    expect(coarse.epsilon).toBeLessThanOrEqual(2);
  });

  it('refuses a target the classic conversion cannot reach, naming the parameter', () => {
    // classic epsilon >= min over orders of log(1/delta) / (alpha - 1) = log(1e5) / 1023 ~ 0.0113
    expect(() => smallestSigma({ q: 0.01, steps: 100, delta: 1e-5, epsilon: 0.01, conversion: 'classic' })).toThrow(/epsilon must be reachable/);
  });

  it.each([
    [{ q: 0, steps: 10, delta: 1e-5, epsilon: 1 }, 'q must be'],
    [{ q: 1.2, steps: 10, delta: 1e-5, epsilon: 1 }, 'q must be'],
    [{ q: 0.1, steps: 2.5, delta: 1e-5, epsilon: 1 }, 'steps must be'],
    [{ q: 0.1, steps: 0, delta: 1e-5, epsilon: 1 }, 'steps must be'],
    [{ q: 0.1, steps: 10, delta: 1, epsilon: 1 }, 'delta must be'],
    [{ q: 0.1, steps: 10, delta: 1e-5, epsilon: 0 }, 'epsilon must be'],
    [{ q: 0.1, steps: 10, delta: 1e-5, epsilon: 1, relativeTolerance: 0 }, 'relativeTolerance must be'],
  ])('refuses %o', (req, message) => {
    try {
      smallestSigma(req);
      expect.unreachable();
    } catch (e) {
      expect(isFedloraError(e, 'FL_ERR_PRIVACY_ARGUMENT'), String(e)).toBe(true);
      expect((e as Error).message).toContain(message);
    }
  });
});
