/**
 * One round on the client (docs/architecture.md, "One round, end to end", steps 3 and 4): an offer in, a
 * sealed and signed update out (`trainRound`, then `sealRound` on the agent's thread). Builds the LoRA model the plan describes, starts it from the
 * offered state (`global`: load it; `fresh`: merge it into the base weights, FLoRA), trains on
 * the local data with the plan's settings (DP-SGD when the plan asks), evaluates, encodes exactly
 * the plan's tensors and seals them to the coordinator with privacy/envelope.ts.
 */
import { FedloraError } from '../../shared/errors.js';
import type { Offer } from '../../shared/protocol/events.js';
import { scaling, type Adapter } from '../../shared/adapter.js';
import { sealUpdate } from '../../privacy/envelope.js';
import type { KeyPairs } from '../../privacy/keys.js';
import { moduleSeed } from '../lora/init.js';
import type { LoraModel } from '../lora/lora-model.js';
import type { TrainProgress } from '../train/trainer.js';
import type { TrainWorkerPool } from '../train/train-worker-pool.js';
import type { BaseModel } from './base-model.js';
import { clientDpSettings, type ClientDpSettings } from './client-dp.js';
import type { LocalData } from './local-data.js';
import { decodeOfferedState, encodeUpdate } from './update-payload.js';
import { fedsbInitGradient, isFedSbInitPlan } from './fedsb-init-round.js';
import { truncateToPlannedRanks } from './rank-truncation.js';

/** What a round's training reports while it runs, and how it is stopped. */
export interface TrainHooks {
  /** Aborts training (round closed, job ended, agent stopping). */
  readonly signal?: AbortSignal;
  readonly onStart?: (totalSteps: number) => void;
  readonly onStep?: (p: TrainProgress) => void;
}

/** A trained round, before sealing: the update payload and what the summary reports. */
export interface TrainedRound {
  /** The safetensors update (exactly the plan's tensors, with the protocol's metadata). */
  readonly payload: Uint8Array;
  /** The update's metrics as sent (loss, accuracy, ...). */
  readonly metrics: Readonly<Record<string, number>>;
  readonly examples: number;
  readonly steps: number;
  readonly seconds: number;
  /** DP-SGD settings used and steps taken, when the plan asked for client DP. */
  readonly dp?: { readonly settings: ClientDpSettings; readonly steps: number };
  /** Fed-SB's init phase: the noisy gradient release (one Gaussian mechanism, q = 1), when noised. */
  readonly initRelease?: { readonly noiseMultiplier: number; readonly clipNorm: number };
}

/** Trains rounds: in this thread (`trainRound`), or in a worker thread (worker-trainer.ts). */
export interface RoundTrainer {
  train(offer: Offer, hooks: TrainHooks): Promise<TrainedRound>;
  /** Frees what the trainer holds (a worker thread). */
  close(): Promise<void>;
}

/** A RoundTrainer on this thread. */
export function inProcessTrainer(model: BaseModel, data: LocalData): RoundTrainer {
  return { train: (offer, hooks) => trainRound(offer, model, data, hooks), close: async () => undefined };
}

/** Seals and signs a trained round's payload for the coordinator (privacy/envelope.ts). */
export function sealRound(offer: Offer, payload: Uint8Array, keys: KeyPairs, clientId: string, coordinatorBoxPublicKey: Uint8Array): Uint8Array {
  return sealUpdate(payload, { jobId: offer.jobId, round: offer.round, attempt: offer.attempt, clientId }, keys.sign.secretKey, coordinatorBoxPublicKey);
}

/** Thrown (and caught by the agent) when a round's training is aborted. */
export class RoundAborted extends Error {
  constructor(readonly reason: string) {
    super(`round aborted: ${reason}`);
    this.name = 'RoundAborted';
  }
}

/**
 * Trains one round and returns the update payload (not yet sealed).
 * @param parallel data-parallel worker threads holding the same base model and data (the
 *   training worker's `--threads`); each builds the round's model from the offer. @default none
 * @throws RoundAborted when `hooks.signal` fires; FedloraError for a plan the model cannot follow
 */
export async function trainRound(offer: Offer, base: BaseModel, data: LocalData, hooks: TrainHooks = {}, parallel?: TrainWorkerPool): Promise<TrainedRound> {
  const plan = offer.plan;
  const checkAbort = (): void => {
    if (hooks.signal?.aborted === true) throw new RoundAborted(String(hooks.signal.reason ?? 'aborted'));
  };
  if (isFedSbInitPlan(plan)) {
    // Fed-SB's init phase: the summed base-weight gradient instead of training (fedsb-init-round.ts)
    checkAbort();
    const g = await fedsbInitGradient(offer, base, data);
    return { payload: g.payload, metrics: {}, examples: g.examples, steps: 0, seconds: g.seconds, ...(g.dp !== undefined && { initRelease: g.dp }) };
  }
  const state = decodeOfferedState(offer.state);
  const dp = clientDpSettings(plan, data.examples);
  checkAbort();
  const model = await startModel(offer, base, state);
  try {
    await parallel?.begin({ kind: 'offer', offer }, model);
    checkAbort();
    const t = plan.training;
    const { train } = await import('../train/trainer.js');
    const stepsPerEpoch = dp === null ? Math.ceil(data.examples / t.batchSize) : Math.max(1, Math.round(1 / dp.samplingRate));
    // Fractional epochs become a step limit; DP takes exactly the steps it was calibrated for.
    const maxSteps = dp !== null ? dp.stepsPerRound : (t.steps ?? Math.max(1, Math.round(t.epochs * stepsPerEpoch)));
    const epochs = Math.max(1, Math.ceil(maxSteps / stepsPerEpoch));
    hooks.onStart?.(maxSteps);
    const result = await train(model, data.source, {
      epochs,
      maxSteps,
      batchSize: t.batchSize,
      lr: t.lr,
      schedule: t.schedule,
      warmupSteps: t.warmupSteps,
      weightDecay: t.weightDecay,
      seed: plan.seed,
      ...(dp !== null && { dp: { noiseMultiplier: dp.noiseMultiplier, clipNorm: dp.clipNorm, samplingRate: dp.samplingRate } }),
      ...(parallel !== undefined && { parallel }),
      onProgress: (p) => {
        hooks.onStep?.(p);
        checkAbort();
      },
    });
    checkAbort();
    const metrics: Record<string, number> = {};
    const finiteLosses = result.losses.filter((l) => Number.isFinite(l));
    if (finiteLosses.length > 0) metrics.train_loss = finiteLosses.reduce((a, b) => a + b, 0) / finiteLosses.length;
    if (model.task === 'classification') {
      const { evaluate } = await import('../train/evaluate.js');
      const ev = await evaluate(model, data.source);
      metrics.loss = ev.loss;
      if (ev.accuracy !== undefined) metrics.accuracy = ev.accuracy;
    }
    const payload = encodeUpdate(await model.extractUpdate(), plan, data.examples, metrics);
    return {
      payload,
      metrics,
      examples: data.examples,
      steps: result.steps,
      seconds: result.seconds,
      ...(dp !== null && { dp: { settings: dp, steps: result.dp?.steps ?? result.steps } }),
    };
  } finally {
    await parallel?.end().catch(() => undefined);
    model.dispose();
  }
}

/**
 * The round's LoRA model, started as the plan says: `global` loads the offered state adapter;
 * `fresh` (FLoRA) merges the offered state, the sum of every earlier round, into the pristine base
 * weights (W0 <- W0 + s B A, s = alpha / r of the state's module) and keeps the fresh factors of the
 * round's seed (A Kaiming-uniform, B = 0).
 * @param state the decoded offered state (null: none)
 * @returns a model the caller disposes
 * @throws FL_ERR_ADAPTER_LAYOUT when the plan mixes ranks, or the state does not fit the plan
 */
export async function startModel(offer: Offer, base: BaseModel, state: Adapter | null): Promise<LoraModel> {
  const plan = offer.plan;
  const first = plan.modules[0];
  if (first === undefined) throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `round ${offer.round}: the plan names no module`);
  // One rank per round, except modules the coordinator capped at min(m, n) (a small head), which
  // keep the round's scaling alpha / rank.
  const rank = Math.max(...plan.modules.map((m) => m.rank));
  const top = plan.modules.find((m) => m.rank === rank)!;
  const s = top.alpha / rank;
  const odd = plan.modules.find((m) => (m.rank !== rank && m.rank !== Math.min(rank, m.outFeatures, m.inFeatures)) || m.alpha / m.rank !== s);
  if (odd !== undefined) {
    throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `round ${offer.round}: module '${odd.path}' has rank ${odd.rank} alpha ${odd.alpha}, '${top.path}' rank ${rank} alpha ${top.alpha}; the client trains one rank per round (below it only where min(m, n) caps it) and one scaling`);
  }
  const capped = plan.modules.filter((m) => m.rank !== rank);
  const model = await base.build({
    variant: plan.variant,
    rank,
    alpha: top.alpha,
    modules: plan.modules.map((m) => m.path),
    seed: plan.seed,
    ...(capped.length > 0 && { moduleRanks: Object.fromEntries(capped.map((m) => [m.path, { rank: m.rank, alpha: m.alpha }])) }),
  });
  try {
    if (plan.start === 'global') {
      if (state === null) throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `round ${offer.round}: the plan starts from the global state, but the offer carries none`);
      // FedAvg with heterogeneous ranks: the global adapter is padded to r_max; start from its
      // leading components at this client's rank (HetLoRA).
      model.loadGlobal(plan.variant === 'lora' ? truncateToPlannedRanks(state, plan.modules) : state);
    } else if (state !== null) {
      const layers = model.modules();
      for (const m of state.layout.modules) {
        const f = state.factors.get(m.path);
        const layer = layers.get(m.path);
        if (layer === undefined) throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `round ${offer.round}: the state names module '${m.path}', which the plan does not adapt`);
        if (f?.A === undefined || f.B === undefined) throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `round ${offer.round}: the state's module '${m.path}' lacks A or B to merge`);
        layer.mergeStack(f.B, f.A, scaling(m), moduleSeed(plan.seed, m.path));
      }
    }
    return model;
  } catch (e) {
    model.dispose();
    throw e;
  }
}
