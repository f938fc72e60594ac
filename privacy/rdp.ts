/**
 * Renyi differential privacy of the Poisson-subsampled Gaussian mechanism (SGM): each record is
 * included with probability q, the sum of the included (clipped, sensitivity-1) contributions gets
 * N(0, sigma^2) noise. Mironov, Talwar, Zhang 2019, "Renyi Differential Privacy of the Sampled
 * Gaussian Mechanism" (arXiv:1908.10530), Section 3.3:
 *
 *   RDP(alpha) = log(A_alpha) / (alpha - 1),
 *   A_alpha = E_{z ~ mu0} [ ((1 - q) + q mu1(z)/mu0(z))^alpha ],  mu0 = N(0, sigma^2), mu1 = N(1, sigma^2).
 *
 * Integer alpha (binomial expansion, all terms positive):
 *   A_alpha = sum_{i=0}^{alpha} C(alpha, i) q^i (1-q)^{alpha-i} exp((i^2 - i) / (2 sigma^2)).
 * We sum A_alpha - 1 = sum_{i>=2} C(alpha, i) q^i (1-q)^{alpha-i} expm1((i^2 - i) / (2 sigma^2)) instead
 * (the coefficients sum to 1 and the i = 0, 1 terms vanish), then log A = log1p(A - 1): the same
 * value, but accurate to ~1e-15 relative even when A is within 1e-12 of 1 (tiny q, large sigma),
 * where log of a sum near 1 would keep only ~4 digits of the RDP.
 *
 * Fractional alpha (the paper's series, split at z0 = sigma^2 log(1/q - 1) + 1/2 where
 * q mu1 = (1-q) mu0; C(alpha, i) is negative for odd i - ceil(alpha) > 0, and keeps its sign):
 *   A_alpha = sum_{i>=0} C(alpha, i) [ q^i (1-q)^{alpha-i} exp((i^2 - i)/(2 sigma^2)) erfc((i - z0)/(sqrt2 sigma)) / 2
 *                                    + q^{alpha-i} (1-q)^i exp((j^2 - j)/(2 sigma^2)) erfc((z0 - j)/(sqrt2 sigma)) / 2 ],  j = alpha - i.
 * Every term is formed in log space and added with its sign, so nothing overflows for alpha = 1024
 * or q = 1e-9. The series stops when, past the alternating regime (i > alpha + 1), both terms
 * shrink and the larger is below 2^-55 of A and 1e-15 of log A: the tail of an alternating series
 * with shrinking terms is smaller than its first omitted term (with an Euler transform of that
 * tail where it shrinks only polynomially). Where log A < 1e-5 the same series is re-summed as
 * A - 1 (logAMinusOneFractionalSmall), as for integer orders, to keep ~15 digits.
 *
 * Edge cases, as in the reference implementations: q = 0 gives 0; sigma = 0 (no noise) gives
 * +Infinity; q = 1 is the plain Gaussian mechanism alpha / (2 sigma^2). Also sigma = +Infinity
 * (the output is pure noise) gives 0, and order +Infinity gives +Infinity for q > 0.
 */
import { logAddExp, logErfc, signedLogAdd, SIGNED_ZERO, type SignedLog } from './log-space.js';
import { privacyArgumentError } from './argument-checks.js';

/**
 * The default RDP orders: 1.1, 1.2, ..., 10.9, then 11, 12, ..., 63, then 128, 256, 512, 1024.
 * The fractional ones are built as 1 + x / 10 so each float is bit-identical to the reference
 * implementations' (dp_accounting's DEFAULT_RDP_ORDERS), and the reported optimal order matches.
 */
export const DEFAULT_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, k) => 1 + (k + 1) / 10),
  ...Array.from({ length: 53 }, (_, k) => 11 + k),
  128,
  256,
  512,
  1024,
]);

/**
 * How the fractional-order series is summed.
 * - `signed` (default): the exact series of Mironov, Talwar, Zhang 2019, each term with its sign,
 *   summed to convergence. Matches TensorFlow Privacy's compute_rdp and Opacus.
 * - `absolute`: the sum of the terms' absolute values, capped at 1000 terms (an order that has
 *   not converged by then is +Infinity, i.e. left out of the minimum). An upper bound on the
 *   exact value; it is what dp_accounting's RdpAccountant computes since April 2024 (commit
 *   0b109e9, "Improve numerical stability of RDP computation", and 6f7deb3 for the cap), so it
 *   reproduces that library where it differs from the exact series (small fractional orders).
 */
export type FractionalSeries = 'signed' | 'absolute';

export interface RdpOptions {
  /** @default 'signed' */
  fractionalSeries?: FractionalSeries;
}

/** dp_accounting's iteration cap for the fractional series (`_MAX_STEPS_LOG_A_FRAC`). */
const ABSOLUTE_SERIES_MAX_TERMS = 1000;
/** A cap for the exact series that only pathological inputs reach (then the order is left out). */
const SIGNED_SERIES_MAX_TERMS = 2_000_000;

function checkMechanism(q: number, sigma: number, order: number): void {
  if (typeof q !== 'number' || !(q >= 0 && q <= 1)) privacyArgumentError('q', 'a sampling rate in [0, 1]', q);
  if (typeof sigma !== 'number' || !(sigma >= 0) || Number.isNaN(sigma)) privacyArgumentError('sigma', 'a noise multiplier >= 0', sigma);
  if (typeof order !== 'number' || !(order > 1)) privacyArgumentError('order', 'an RDP order > 1', order);
}

/**
 * log(A_alpha - 1) for integer alpha >= 2 and 0 < q < 1: the binomial sum without its i = 0, 1
 * terms, each with expm1 in place of exp (see the file comment). All terms are positive.
 */
function logAMinusOneInteger(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const twoSigma2 = 2 * sigma * sigma;
  let logBinom = Math.log(alpha); // log C(alpha, 1)
  let acc = -Infinity;
  for (let i = 2; i <= alpha; i++) {
    // C(alpha, i) = C(alpha, i - 1) (alpha - i + 1) / i: exact recurrence, ~1e-16 relative per step.
    logBinom += Math.log((alpha - i + 1) / i);
    const exponent = (i * i - i) / twoSigma2;
    // log(expm1(e)) stays accurate for tiny e (large sigma) and large e (exponent itself).
    const logExpm1 = exponent > 30 ? exponent + Math.log1p(-Math.exp(-exponent)) : Math.log(Math.expm1(exponent));
    acc = logAddExp(acc, logBinom + i * logQ + (alpha - i) * log1mQ + logExpm1);
  }
  return acc;
}

/** Euler-van Wijngaarden averaging depth for the alternating tail of the signed series. */
const EULER_DEPTH = 12;
const EULER_WEIGHTS: readonly number[] = (() => {
  const w = [1];
  for (let m = 1; m <= EULER_DEPTH; m++) for (let k = m; k >= 0; k--) w[k] = ((w[k] ?? 0) + (k > 0 ? w[k - 1]! : 0));
  return w.map((c) => c / 2 ** EULER_DEPTH);
})();

/**
 * The Euler transform of the partial sums of an alternating series (repeated means of consecutive
 * partial sums, depth EULER_DEPTH): feed it every partial sum from the alternating regime on, in
 * log space; it answers once the accelerated value has settled.
 */
class EulerTail {
  private scale = NaN;
  private readonly ring: number[] = [];
  private last = NaN;

  /** Forget the run (the next partial sum starts a new run of consecutive ones). */
  reset(): void {
    this.ring.length = 0;
    this.last = NaN;
  }

  /**
   * @param logSum log of the current partial sum (positive)
   * @param logTolerance stop when the accelerated value moves by less than e^logTolerance
   * @param trusted whether the raw terms are already in the asymptotic regime
   * @returns log of the accelerated sum once settled, else NaN
   */
  push(logSum: number, logTolerance: number, trusted: boolean): number {
    if (Number.isNaN(this.scale)) this.scale = logSum;
    this.ring.push(Math.exp(logSum - this.scale));
    if (this.ring.length > EULER_DEPTH + 1) this.ring.shift();
    if (this.ring.length < EULER_DEPTH + 1) return NaN;
    let accelerated = 0;
    for (let k = 0; k <= EULER_DEPTH; k++) accelerated += EULER_WEIGHTS[k]! * this.ring[k]!;
    const settled = trusted && Math.abs(accelerated - this.last) < Math.exp(logTolerance - this.scale);
    this.last = accelerated;
    return settled ? this.scale + Math.log(accelerated) : NaN;
  }
}

/**
 * log(A_alpha) for fractional alpha and 0 < q < 1 by the series of Section 3.3; +Infinity if it
 * does not converge within the term cap.
 *
 * Signed series: past i = alpha + 1 the terms alternate in sign and shrink only polynomially when
 * z0 is small (q near 1/2: ~i^{-alpha-2}), so plain summation to 1e-16 needs ~1e5 terms. We also
 * track the repeated means of consecutive partial sums (the Euler transform of the alternating
 * tail, depth 12, whose error falls like (alpha / 2i)^12) and stop when that accelerated value
 * has settled to 1e-15 of log A, or when the plain tail bound (the first omitted term) is below it.
 */
function logAFractional(q: number, sigma: number, alpha: number, series: FractionalSeries): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const twoSigma2 = 2 * sigma * sigma;
  const sqrt2Sigma = Math.SQRT2 * sigma;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  const logHalf = Math.log(0.5);
  let sum0: SignedLog = SIGNED_ZERO;
  let sum1: SignedLog = SIGNED_ZERO;
  let logAbsBinom = 0; // log |C(alpha, 0)|
  let binomSign: 1 | -1 = 1;
  let lastS0 = Infinity;
  let lastS1 = Infinity;
  const tail = new EulerTail();
  const maxTerms = series === 'signed' ? SIGNED_SERIES_MAX_TERMS : ABSOLUTE_SERIES_MAX_TERMS;
  for (let i = 0; i < maxTerms; i++) {
    if (i > 0) {
      // C(alpha, i) = C(alpha, i - 1) (alpha - i + 1) / i; the factor turns negative once i > alpha + 1.
      const factor = (alpha - i + 1) / i;
      logAbsBinom += Math.log(Math.abs(factor));
      if (factor < 0) binomSign = binomSign === 1 ? -1 : 1;
    }
    const j = alpha - i;
    const logS0 = logAbsBinom + i * logQ + j * log1mQ + (i * i - i) / twoSigma2 + logHalf + logErfc((i - z0) / sqrt2Sigma);
    const logS1 = logAbsBinom + j * logQ + i * log1mQ + (j * j - j) / twoSigma2 + logHalf + logErfc((z0 - j) / sqrt2Sigma);
    const sign = series === 'signed' ? binomSign : 1;
    sum0 = signedLogAdd(sum0, { sign, logAbs: logS0 });
    sum1 = signedLogAdd(sum1, { sign, logAbs: logS1 });
    const total = signedLogAdd(sum0, sum1);
    const [previous0, previous1] = [lastS0, lastS1];
    lastS0 = logS0;
    lastS1 = logS1;
    const shrinking = logS0 < previous0 && logS1 < previous1;
    if (series === 'absolute') {
      // dp_accounting's rule: both terms shrinking and the larger below e^-30 of the total.
      if (shrinking && Math.max(logS0, logS1) < total.logAbs - 30) return total.logAbs;
      continue;
    }
    if (!(i > alpha + 1)) continue;
    if (total.sign !== 1) {
      tail.reset(); // not yet settled to a positive A: restart the run of consecutive sums
      continue;
    }
    const logA = total.logAbs;
    // Stop when the first omitted term (a bound on the alternating tail) is below 2^-55 of A and
    // 1e-15 of log A, so the RDP = log A / (alpha - 1) keeps ~15 digits.
    const logTolerance = Math.max(logA - 38, Math.log(Math.abs(logA)) - 34.5);
    // A part whose terms are e^-40 below the tolerance is negligible even if round-off makes
    // consecutive terms equal (huge sigma: log erfc ~ -1e19 swamps the i-dependent part).
    const settled0 = logS0 < previous0 || logS0 < logTolerance - 40;
    const settled1 = logS1 < previous1 || logS1 < logTolerance - 40;
    if (settled0 && settled1 && Math.max(logS0, logS1) < logTolerance) return logA;
    // Trust the transform only in the asymptotic regime: terms shrinking and below 1e-6 of A.
    const accelerated = tail.push(logA, logTolerance, settled0 && settled1 && Math.max(logS0, logS1) < logA - 14);
    if (!Number.isNaN(accelerated)) return accelerated;
  }
  return Infinity;
}

/**
 * log(A_alpha - 1) for fractional alpha and 0 < q < 1/2, for when A is so close to 1 that log A
 * from the plain series would keep few digits (its terms are O(1) and carry ~1e-16 absolute error).
 *
 * The same series, rearranged exactly: for q < 1/2, sum_i C(alpha, i) q^i (1-q)^(alpha-i) = 1
 * (the binomial series of ((1-q) + q)^alpha, absolutely convergent since q/(1-q) < 1), so
 *   A_alpha - 1 = sum_i C(alpha, i) q^i (1-q)^(alpha-i) [exp((i^2 - i)/(2 sigma^2)) Phi((z0 - i)/sigma) - 1]
 *               + sum_i (the z > z0 terms, unchanged),
 * with Phi((z0 - i)/sigma) = erfc((i - z0)/(sqrt2 sigma)) / 2. Each bracket is formed as expm1 of
 * its log, with log Phi = log1p(-Phi(-(z0 - i)/sigma)) where Phi is near 1, so every term is small
 * and exact to ~1e-16 of itself: no cancellation against the 1.
 * @returns log(A - 1), or NaN when it did not settle (the caller keeps the plain value)
 */
function logAMinusOneFractionalSmall(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const twoSigma2 = 2 * sigma * sigma;
  const sqrt2Sigma = Math.SQRT2 * sigma;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  const logHalf = Math.log(0.5);
  let sum: SignedLog = SIGNED_ZERO;
  let logAbsBinom = 0;
  let binomSign: 1 | -1 = 1;
  let lastU = Infinity;
  let lastS1 = Infinity;
  const tail = new EulerTail();
  for (let i = 0; i < 100_000; i++) {
    if (i > 0) {
      const factor = (alpha - i + 1) / i;
      logAbsBinom += Math.log(Math.abs(factor));
      if (factor < 0) binomSign = binomSign === 1 ? -1 : 1;
    }
    const j = alpha - i;
    // log Phi((z0 - i)/sigma), accurate both where Phi is near 1 and where it is tiny.
    const t = (z0 - i) / sqrt2Sigma;
    const logPhi = t > 0 ? Math.log1p(-0.5 * Math.exp(logErfc(t))) : logHalf + logErfc(-t);
    const bracketLog = (i * i - i) / twoSigma2 + logPhi; // log(e^E Phi); the bracket is expm1 of it
    let logU: number;
    let signU: -1 | 0 | 1;
    if (bracketLog === 0) {
      logU = -Infinity;
      signU = 0;
    } else if (bracketLog > 0) {
      signU = binomSign;
      logU = bracketLog > 30 ? bracketLog + Math.log1p(-Math.exp(-bracketLog)) : Math.log(Math.expm1(bracketLog));
    } else {
      signU = binomSign === 1 ? -1 : 1;
      logU = Math.log(-Math.expm1(bracketLog));
    }
    logU += logAbsBinom + i * logQ + j * log1mQ;
    const logS1 = logAbsBinom + j * logQ + i * log1mQ + (j * j - j) / twoSigma2 + logHalf + logErfc((z0 - j) / sqrt2Sigma);
    sum = signedLogAdd(sum, { sign: signU, logAbs: logU });
    sum = signedLogAdd(sum, { sign: binomSign, logAbs: logS1 });
    const [previousU, previousS1] = [lastU, lastS1];
    lastU = logU;
    lastS1 = logS1;
    if (!(i > alpha + 1)) continue;
    if (sum.sign !== 1) {
      tail.reset();
      continue;
    }
    // Past i = alpha + 1 the terms alternate: stop once both shrink below 2^-55 of A - 1, or once
    // the Euler transform of the tail has settled to that (the slow, polynomial tail of small sigma).
    const tolerance = sum.logAbs - 38;
    const settledU = logU < previousU || logU < tolerance - 40;
    const settledS1 = logS1 < previousS1 || logS1 < tolerance - 40;
    if (settledU && settledS1 && Math.max(logU, logS1) < tolerance) return sum.logAbs;
    const accelerated = tail.push(sum.logAbs, tolerance, settledU && settledS1 && Math.max(logU, logS1) < sum.logAbs - 14);
    if (!Number.isNaN(accelerated)) return accelerated;
  }
  return NaN;
}

/** Below this log A the plain fractional series keeps fewer than ~11 digits of the RDP. */
const SMALL_LOG_A = 1e-5;

/**
 * RDP of one step of the Poisson-subsampled Gaussian mechanism at one order.
 * Implements Mironov, Talwar, Zhang 2019, Section 3.3 (see the file comment for the formulas).
 * @param q sampling rate in [0, 1]
 * @param sigma noise multiplier (noise standard deviation / L2 sensitivity), >= 0
 * @param order Renyi order alpha > 1 (integer or fractional)
 * @returns epsilon_RDP(alpha) of one step, >= 0; +Infinity for sigma = 0 (or an order whose series did not converge)
 */
export function rdpSampledGaussian(q: number, sigma: number, order: number, options: RdpOptions = {}): number {
  checkMechanism(q, sigma, order);
  if (q === 0 || sigma === Infinity) return 0;
  if (sigma === 0 || order === Infinity) return Infinity;
  if (q === 1) return order / (2 * sigma * sigma);
  if (Number.isInteger(order)) {
    const logAm1 = logAMinusOneInteger(q, sigma, order);
    // log A = log1p(A - 1), written to stay finite when A - 1 overflows a float64.
    const logA = logAm1 > 30 ? logAm1 + Math.log1p(Math.exp(-logAm1)) : Math.log1p(Math.exp(logAm1));
    return logA / (order - 1);
  }
  const series = options.fractionalSeries ?? 'signed';
  const logA = logAFractional(q, sigma, order, series);
  if (series === 'signed' && q < 0.5 && logA < SMALL_LOG_A) {
    // A within 1e-5 of 1: redo it as A - 1 so the RDP keeps ~15 digits (tiny q, large sigma).
    const logAm1 = logAMinusOneFractionalSmall(q, sigma, order);
    if (!Number.isNaN(logAm1)) return Math.log1p(Math.exp(logAm1)) / (order - 1);
  }
  return logA / (order - 1);
}

/**
 * RDP of `steps` compositions of the SGM at each of `orders` (RDP composes by adding, per order).
 * @param steps number of steps, an integer >= 0
 * @param orders @default DEFAULT_ORDERS
 */
export function rdpSampledGaussianOrders(
  q: number,
  sigma: number,
  steps: number,
  orders: readonly number[] = DEFAULT_ORDERS,
  options: RdpOptions = {},
): Float64Array {
  if (typeof steps !== 'number' || !Number.isSafeInteger(steps) || steps < 0) privacyArgumentError('steps', 'an integer >= 0', steps);
  const out = new Float64Array(orders.length);
  for (let k = 0; k < orders.length; k++) {
    const perStep = rdpSampledGaussian(q, sigma, orders[k]!, options);
    // 0 * Infinity would be NaN: zero steps spend nothing whatever the mechanism.
    out[k] = steps === 0 ? 0 : perStep * steps;
  }
  return out;
}
