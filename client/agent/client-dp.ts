/**
 * Client-side sample-level DP-SGD settings of a round (Abadi et al. 2016; docs/privacy.md, "Differential privacy mechanisms"):
 * the plan gives the clip norm C and either sigma or a target epsilon; with a target, sigma is
 * the smallest noise multiplier whose epsilon over the whole job stays within it, from the RDP
 * accountant of the sampled Gaussian mechanism (privacy/calibration.ts).
 *
 * When the plan names the job's Fed-SB init release (clientDp.initReleaseNoiseMultiplier), the
 * calibration composes it with the DP-SGD steps, so the reported epsilon stays within the target
 * whether or not the client made that release.
 *
 * The horizon counts every round of the job, as if this client took part in all of them: a
 * client is not told in advance which rounds it will be selected for, and assuming all is the
 * conservative bound (the epsilon it actually spends, over the rounds it trained, is reported in
 * the summary and is lower).
 */
import { FedloraError } from '../../shared/errors.js';
import type { Plan } from '../../shared/protocol/events.js';
import { DEFAULT_DELTA } from '../../shared/protocol/job-spec.js';
import { smallestSigma } from '../../privacy/calibration.js';
import { epsilonOfEvents, epsilonOfSampledGaussian } from '../../privacy/accountant.js';

export interface ClientDpSettings {
  readonly noiseMultiplier: number;
  readonly clipNorm: number;
  /** q = batchSize / n, capped at 1. */
  readonly samplingRate: number;
  /** DP-SGD steps one round takes. */
  readonly stepsPerRound: number;
  readonly delta: number;
  /** Whether sigma was calibrated from a target epsilon. */
  readonly calibrated: boolean;
}

/**
 * DP-SGD steps of one round: `training.steps` when the plan sets it, else epochs / q rounded (an
 * epoch is 1/q Poisson-sampled steps in expectation).
 */
export function dpStepsPerRound(plan: Plan, q: number): number {
  if (plan.training.steps !== undefined) return plan.training.steps;
  return Math.max(1, Math.round(plan.training.epochs / q));
}

/**
 * The DP-SGD settings of a plan, or null when the plan asks for none.
 * @param examples n_k, the local example count
 * @throws FL_ERR_PRIVACY_ARGUMENT when the plan gives neither sigma nor a target, or the target cannot be met
 */
export function clientDpSettings(plan: Plan, examples: number): ClientDpSettings | null {
  const dp = plan.clientDp;
  if (dp === undefined) return null;
  const q = Math.min(1, plan.training.batchSize / examples);
  const stepsPerRound = dpStepsPerRound(plan, q);
  const delta = dp.delta ?? DEFAULT_DELTA; // one default for the job, the agent and the sim (docs/protocol.md, privacy.budget)
  if (dp.noiseMultiplier !== undefined) {
    return { noiseMultiplier: dp.noiseMultiplier, clipNorm: dp.clip, samplingRate: q, stepsPerRound, delta, calibrated: false };
  }
  if (dp.targetEpsilon === undefined) {
    throw new FedloraError('FL_ERR_PRIVACY_ARGUMENT', 'the plan asks for client DP with neither clientDp.noiseMultiplier nor clientDp.targetEpsilon', { field: 'clientDp' });
  }
  // the target covers the Fed-SB init release too (it is booked on the same client account)
  const release = dp.initReleaseNoiseMultiplier;
  const fixedEvents = release === undefined ? [] : [{ q: 1, sigma: release, steps: 1 }];
  const { sigma } = smallestSigma({ q, steps: stepsPerRound * dp.rounds, delta, epsilon: dp.targetEpsilon, fixedEvents });
  return { noiseMultiplier: sigma, clipNorm: dp.clip, samplingRate: q, stepsPerRound, delta, calibrated: true };
}

/** Epsilon this client has spent after `steps` DP-SGD steps at these settings. */
export function clientEpsilon(settings: ClientDpSettings, steps: number): number {
  if (steps === 0) return 0;
  return epsilonOfSampledGaussian(settings.samplingRate, settings.noiseMultiplier, steps, settings.delta).epsilon;
}

/**
 * Epsilon after `steps` DP-SGD steps composed (RDP) with one plain Gaussian release of noise
 * multiplier `releaseSigma` (q = 1): Fed-SB's noisy init gradient (docs/privacy.md: a data-dependent init spends budget too).
 */
export function clientEpsilonWithRelease(settings: ClientDpSettings, steps: number, releaseSigma: number): number {
  const events = [{ q: 1, sigma: releaseSigma, steps: 1 }, ...(steps > 0 ? [{ q: settings.samplingRate, sigma: settings.noiseMultiplier, steps }] : [])];
  return epsilonOfEvents(events, settings.delta).epsilon;
}
