/**
 * Distributed DP under secure aggregation (Kairouz et al. 2021 "The Distributed Discrete Gaussian
 * Mechanism" for the idea; here the continuous Gaussian, see docs/secure-aggregation.md):
 * the coordinator sees only the sum, so it cannot add the noise of DP-FedAvg after the fact
 * without also seeing each update; instead each client clips its update to L2 norm C and adds its
 * share N(0, (z C)^2 / h) before masking, where h is the number of clients assumed honest.
 *
 * Honest-client assumption: at least h of the n sampled clients add their share faithfully
 * (dishonest ones may add none), the protected client among them. Under add/remove adjacency the
 * protected client's own share leaves the sum together with its update, so only the OTHER clients'
 * shares protect it: of the s - 1 others in the sum at least s - 1 - (n - h) are honest, and the
 * sum carries Gaussian noise of variance at least (s - 1 - (n - h)) (z C)^2 / h whether or not the
 * client took part, i.e. noise multiplier z_eff = z sqrt((s - 1 - (n - h)) / h) with respect to the
 * sensitivity C of one user's clipped update. With h = n = s = 10, z_eff = sqrt(0.9) z = 0.949 z.
 * The accountant books z_eff, never z: dropouts, dishonest clients and the client's own share cost
 * privacy. The coordinator divides the noisy sum by a fixed denominator (clients per round), never
 * by the survivors, whose number moves with the protected client's presence.
 */
import { FedloraError } from '../../shared/errors.js';
import { requireNonNegative, requirePositive } from '../argument-checks.js';
import { addGaussianNoise } from '../gaussian.js';
import type { Mechanism } from '../ledger.js';
import type { RandomSource } from '../random.js';

/**
 * The std of one client's noise share: z C / sqrt(h).
 * @param minHonestClients h, the clients assumed to add their share (an integer >= 1)
 */
export function noiseShareStd(noiseMultiplier: number, clipNorm: number, minHonestClients: number): number {
  requireNonNegative(noiseMultiplier, 'noiseMultiplier');
  requirePositive(clipNorm, 'clipNorm');
  if (!(Number.isInteger(minHonestClients) && minHonestClients >= 1)) {
    throw new FedloraError('FL_ERR_PRIVACY_ARGUMENT', `minHonestClients must be an integer >= 1, got ${minHonestClients}`, { field: 'minHonestClients' });
  }
  return (noiseMultiplier * clipNorm) / Math.sqrt(minHonestClients);
}

/** Adds this client's share N(0, (z C)^2 / h) to its (already clipped) update, in place. */
export function addNoiseShare(update: Float32Array | Float64Array, noiseMultiplier: number, clipNorm: number, minHonestClients: number, random?: RandomSource): void {
  addGaussianNoise(update, noiseShareStd(noiseMultiplier, clipNorm, minHonestClients), random);
}

/**
 * The noise multiplier the sum is guaranteed to carry against one protected client in it, from the
 * other clients' shares only: z sqrt(max(0, s - 1 - (n - h)) / h).
 * @param sampledClients n; @param minHonestClients h <= n; @param survivors s, the clients in the sum
 */
export function effectiveNoiseMultiplier(noiseMultiplier: number, sampledClients: number, minHonestClients: number, survivors: number): number {
  if (!(Number.isInteger(sampledClients) && Number.isInteger(minHonestClients) && Number.isInteger(survivors) && minHonestClients >= 1 && minHonestClients <= sampledClients && survivors >= 0 && survivors <= sampledClients)) {
    throw new FedloraError('FL_ERR_PRIVACY_ARGUMENT', `need integers 1 <= minHonestClients (${minHonestClients}) <= sampledClients (${sampledClients}) and 0 <= survivors (${survivors}) <= sampledClients`);
  }
  // the protected client (one of the s) is excluded: its share goes when it goes
  const honestOthers = Math.max(0, survivors - 1 - (sampledClients - minHonestClients));
  return noiseMultiplier * Math.sqrt(honestOthers / minHonestClients);
}

/**
 * What the ledger books for one securely aggregated round: user-level DP, the sampled Gaussian
 * mechanism with q = clients per round / clients, sigma = z_eff, one step (docs/privacy.md, "Differential privacy mechanisms").
 */
export function secureRoundMechanism(effectiveMultiplier: number, clientsPerRound: number, totalClients: number): Mechanism {
  if (!(clientsPerRound >= 1 && totalClients >= clientsPerRound)) throw new FedloraError('FL_ERR_PRIVACY_ARGUMENT', `need 1 <= clientsPerRound (${clientsPerRound}) <= totalClients (${totalClients})`);
  return { q: clientsPerRound / totalClients, sigma: effectiveMultiplier, steps: 1 };
}
