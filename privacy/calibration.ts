/**
 * Calibration: the smallest noise multiplier sigma whose epsilon, for the given sampling rate,
 * number of steps and delta, is at most a target epsilon.
 *
 * epsilon(sigma) is non-increasing in sigma (every order's RDP is, and both conversions are
 * monotone in the RDP), so bisection on a bracket [lo, hi] with epsilon(lo) > target >=
 * epsilon(hi) finds the boundary. The answer is always the upper end `hi`, a sigma that was
 * evaluated and meets the target: calibration errs on the side of MORE noise, by less than
 * `relativeTolerance * sigma`, and never returns a sigma that misses the target.
 */
import { epsilonOfEvents, type AccountingOptions, type SampledGaussianEvent } from './accountant.js';
import { requireOpenUnit, requirePositive, requireRate, privacyArgumentError } from './argument-checks.js';

export interface CalibrationRequest extends AccountingOptions {
  /** sampling rate in (0, 1] */
  q: number;
  /** number of steps, an integer >= 1 */
  steps: number;
  /** target delta in (0, 1) */
  delta: number;
  /** target epsilon > 0 */
  epsilon: number;
  /**
   * Stop when the bracket is narrower than this fraction of sigma.
   * @default 1e-9
   */
  relativeTolerance?: number;
  /**
   * Releases already made or planned at a fixed sigma (e.g. Fed-SB's noisy init gradient, q = 1),
   * composed with the calibrated steps: the target covers them all.
   * @default none
   */
  fixedEvents?: readonly SampledGaussianEvent[];
}

export interface CalibrationResult {
  /** the smallest sigma found that meets the target (within relativeTolerance, erring high) */
  sigma: number;
  /** epsilon at that sigma (<= the target) and its optimal order */
  epsilon: number;
  order: number;
  /** the largest sigma evaluated that misses the target: the true boundary lies in (sigmaBelow, sigma] */
  sigmaBelow: number;
  /** accountant evaluations used */
  evaluations: number;
}

/** Beyond this sigma we give up: the target is below what the orders can certify. */
const MAX_SIGMA = 1e12;
const MIN_SIGMA = 1e-6;

/**
 * The smallest sigma such that epsilon(q, sigma, steps, delta) <= target epsilon.
 * @throws FL_ERR_PRIVACY_ARGUMENT for arguments out of range, or when no sigma up to 1e12 meets
 *   the target (with the classic conversion, epsilon never drops below min over orders of
 *   log(1/delta)/(alpha - 1))
 */
export function smallestSigma(request: CalibrationRequest): CalibrationResult {
  const { q, steps, delta, epsilon: target } = request;
  requireRate(q, 'q');
  if (typeof steps !== 'number' || !Number.isSafeInteger(steps) || steps < 1) privacyArgumentError('steps', 'an integer >= 1', steps);
  requireOpenUnit(delta, 'delta');
  requirePositive(target, 'epsilon');
  const tolerance = request.relativeTolerance ?? 1e-9;
  if (typeof tolerance !== 'number' || !(tolerance > 0 && tolerance < 1)) privacyArgumentError('relativeTolerance', 'in (0, 1)', tolerance);

  let evaluations = 0;
  const at = (sigma: number) => {
    evaluations++;
    return epsilonOfEvents([...(request.fixedEvents ?? []), { q, sigma, steps }], delta, request);
  };

  // Bracket: grow hi until it meets the target, shrink lo until it misses.
  let hi = 1;
  let hiResult = at(hi);
  let lo: number;
  if (hiResult.epsilon > target) {
    lo = hi;
    while (hiResult.epsilon > target) {
      lo = hi;
      hi *= 2;
      if (hi > MAX_SIGMA) {
        privacyArgumentError('epsilon', `reachable with sigma <= ${MAX_SIGMA} for q=${q}, steps=${steps}, delta=${delta} and these orders`, target);
      }
      hiResult = at(hi);
    }
  } else {
    lo = hi / 2;
    for (;;) {
      const r = at(lo);
      if (r.epsilon > target) break;
      hi = lo;
      hiResult = r;
      // sigma -> 0 gives epsilon -> Infinity, so 0 is a valid lower end of the bracket.
      if (lo < MIN_SIGMA) {
        lo = 0;
        break;
      }
      lo /= 2;
    }
  }

  while (hi - lo > tolerance * hi) {
    const mid = lo + (hi - lo) / 2;
    if (mid <= lo || mid >= hi) break; // float resolution reached
    const r = at(mid);
    if (r.epsilon <= target) {
      hi = mid;
      hiResult = r;
    } else {
      lo = mid;
    }
  }
  return { sigma: hi, epsilon: hiResult.epsilon, order: hiResult.order, sigmaBelow: lo, evaluations };
}
