/**
 * Adaptive clipping for user-level DP-FedAvg (Andrew, Thakkar, McMahan, Ramaswamy 2021,
 * "Differentially Private Learning with Adaptive Clipping", NeurIPS; Algorithm 1 and Sec. 3).
 *
 * Instead of a fixed clip norm C, the server tracks the gamma-quantile of the clients' update
 * norms. Each round, every sampled client reports one bit b_i = 1[||Delta_i|| <= C] (with its
 * clipped update); the server sums the CENTRED bits b_i - 1/2 and forms the noisy fraction
 *   b~ = (sum_i (b_i - 1/2) + N(0, sigma_b^2)) / m + 1/2          (m: expected clients per round)
 * and updates geometrically
 *   C <- C * exp(-eta_C (b~ - gamma)).
 * The bit count is itself released, so it is noised and charged: Theorem 1 / Sec. 3.1 show that
 * noising the updates with z_Delta and the count with sigma_b is as private as one Gaussian
 * mechanism with multiplier z, where z^-2 = z_Delta^-2 + (2 sigma_b)^-2. The accountant therefore
 * charges z, and the updates get the slightly larger z_Delta ({@link updateNoiseMultiplier}).
 * That identity needs each client's term in the count to have sensitivity 1/2 under add/remove
 * adjacency, hence the centring (as TF Privacy's quantile estimator): a raw 0/1 bit has
 * sensitivity 1, and the round would really spend (z_Delta^-2 + sigma_b^-2)^(-1/2), e.g. 0.756
 * instead of z = 1 at m = 20 (issue 11).
 */
import { privacyArgumentError, requireNonNegative, requirePositive } from './argument-checks.js';
import { gaussianSample } from './gaussian.js';
import { cryptoRandomSource, type RandomSource } from './random.js';

/** The paper's defaults (Sec. 4): C0 = 0.1, gamma = 0.5 (median), eta_C = 0.2. */
export const ADAPTIVE_CLIPPING_DEFAULTS = Object.freeze({
  /** C0, the clip norm of the first round. */
  initialClipNorm: 0.1,
  /** gamma, the fraction of updates meant to be left unclipped. */
  targetUnclippedQuantile: 0.5,
  /** eta_C, the step size of the geometric update. */
  clipLearningRate: 0.2,
});

/** Options of adaptive clipping; each defaults to {@link ADAPTIVE_CLIPPING_DEFAULTS}. */
export interface AdaptiveClippingOptions {
  /** @default 0.5 */
  readonly targetUnclippedQuantile?: number;
  /** @default 0.2 */
  readonly clipLearningRate?: number;
}

/**
 * The paper's recommended count noise, sigma_b = m / 20 (Sec. 4: "we set sigma_b = m/20").
 * @param expectedClients m, the expected number of clients per round, > 0
 */
export function defaultCountNoiseStd(expectedClients: number): number {
  requirePositive(expectedClients, 'expectedClients');
  return expectedClients / 20;
}

/** The bit a client reports: 1 when its update norm is within the current clip norm. */
export function unclippedBit(norm: number, clipNorm: number): 0 | 1 {
  return norm <= clipNorm ? 1 : 0;
}

/**
 * The released statistic: sum_i (b_i - 1/2) + N(0, sigma_b^2). Adding or removing one client moves
 * the centred sum by exactly 1/2, the sensitivity {@link effectiveNoiseMultiplier} assumes.
 * @param unclippedCount sum of the clients' bits
 * @param reportedClients the clients whose bits are in the count (>= unclippedCount)
 */
export function noisyCentredCount(unclippedCount: number, reportedClients: number, countNoiseStd: number, source: RandomSource = cryptoRandomSource()): number {
  requireNonNegative(unclippedCount, 'unclippedCount');
  if (!(Number.isInteger(reportedClients) && reportedClients >= unclippedCount)) privacyArgumentError('reportedClients', `an integer >= unclippedCount (${unclippedCount})`, reportedClients);
  requireNonNegative(countNoiseStd, 'countNoiseStd');
  return unclippedCount - reportedClients / 2 + gaussianSample(countNoiseStd, source);
}

/**
 * b~ = (sum_i (b_i - 1/2) + N(0, sigma_b^2)) / m + 1/2, from the centred bits
 * ({@link noisyCentredCount}). May fall outside [0, 1]: the update uses it as is.
 * @param unclippedCount sum of the clients' bits
 * @param reportedClients the clients whose bits are in the count
 * @param expectedClients m, > 0 (the expected, not the actual, number: as for the update average)
 * @param countNoiseStd sigma_b >= 0
 * @param source @default the node:crypto CSPRNG
 */
export function noisyUnclippedFraction(unclippedCount: number, reportedClients: number, expectedClients: number, countNoiseStd: number, source: RandomSource = cryptoRandomSource()): number {
  requirePositive(expectedClients, 'expectedClients');
  return noisyCentredCount(unclippedCount, reportedClients, countNoiseStd, source) / expectedClients + 0.5;
}

function resolved(options: AdaptiveClippingOptions): { gamma: number; eta: number } {
  const gamma = options.targetUnclippedQuantile ?? ADAPTIVE_CLIPPING_DEFAULTS.targetUnclippedQuantile;
  const eta = options.clipLearningRate ?? ADAPTIVE_CLIPPING_DEFAULTS.clipLearningRate;
  if (!Number.isFinite(gamma) || gamma < 0 || gamma > 1) privacyArgumentError('targetUnclippedQuantile', 'in [0, 1]', gamma);
  requirePositive(eta, 'clipLearningRate');
  return { gamma, eta };
}

/**
 * The geometric clip-norm update C * exp(-eta_C (b~ - gamma)).
 * @param clipNorm the current C, > 0
 * @param noisyFraction b~ from {@link noisyUnclippedFraction}
 */
export function nextClipNorm(clipNorm: number, noisyFraction: number, options: AdaptiveClippingOptions = {}): number {
  requirePositive(clipNorm, 'clipNorm');
  if (!Number.isFinite(noisyFraction)) privacyArgumentError('noisyFraction', 'finite', noisyFraction);
  const { gamma, eta } = resolved(options);
  return clipNorm * Math.exp(-eta * (noisyFraction - gamma));
}

/**
 * The noise multiplier for the updates, z_Delta = (z^-2 - (2 sigma_b)^-2)^(-1/2), so that updates
 * and count together spend what one Gaussian mechanism with multiplier z spends (Andrew et al.
 * 2021, Sec. 3.1; as TensorFlow Federated's adaptive_clip_noise_params). Needs 2 sigma_b > z.
 * @param noiseMultiplier z, the multiplier the accountant charges, >= 0 (0: no DP, returns 0)
 * @param countNoiseStd sigma_b, > z / 2
 */
export function updateNoiseMultiplier(noiseMultiplier: number, countNoiseStd: number): number {
  requireNonNegative(noiseMultiplier, 'noiseMultiplier');
  if (noiseMultiplier === 0) return 0;
  requirePositive(countNoiseStd, 'countNoiseStd');
  const rest = noiseMultiplier ** -2 - (2 * countNoiseStd) ** -2;
  if (rest <= 0) {
    privacyArgumentError('countNoiseStd', `> noiseMultiplier / 2 = ${noiseMultiplier / 2} (the count noise must leave budget for the updates)`, countNoiseStd);
  }
  return rest ** -0.5;
}

/**
 * The multiplier z one round spends when updates carry z_Delta (sensitivity C) and the centred
 * count sigma_b (sensitivity 1/2): z = (z_Delta^-2 + (2 sigma_b)^-2)^(-1/2), since the RDP of the
 * two Gaussian releases adds: alpha / (2 z_Delta^2) + alpha (1/2)^2 / (2 sigma_b^2).
 * The inverse of {@link updateNoiseMultiplier}.
 */
export function effectiveNoiseMultiplier(updateMultiplier: number, countNoiseStd: number): number {
  requirePositive(updateMultiplier, 'updateMultiplier');
  requirePositive(countNoiseStd, 'countNoiseStd');
  return (updateMultiplier ** -2 + (2 * countNoiseStd) ** -2) ** -0.5;
}

/**
 * One round of adaptive clipping on the server, from the clients' update norms.
 * @param norms the update norms of the clients that reported (before clipping)
 * @param clipNorm the C this round clipped with
 * @param options.expectedClients m; options.countNoiseStd sigma_b (@default m / 20)
 * @returns the next round's clip norm, the true bit count (for logs only: not private) and b~
 */
export function adaptiveClipRound(
  norms: ArrayLike<number>,
  clipNorm: number,
  options: AdaptiveClippingOptions & { expectedClients: number; countNoiseStd?: number; source?: RandomSource },
): { nextClipNorm: number; unclippedCount: number; noisyFraction: number } {
  requirePositive(clipNorm, 'clipNorm');
  let unclippedCount = 0;
  for (let i = 0; i < norms.length; i++) unclippedCount += unclippedBit(norms[i]!, clipNorm);
  const sigmaB = options.countNoiseStd ?? defaultCountNoiseStd(options.expectedClients);
  const noisyFraction = noisyUnclippedFraction(unclippedCount, norms.length, options.expectedClients, sigmaB, options.source);
  return { nextClipNorm: nextClipNorm(clipNorm, noisyFraction, options), unclippedCount, noisyFraction };
}
