/**
 * From the strategy's plans to the offers on the wire (shared/protocol/events.ts `Plan`): each
 * client's modules, the update tensors it must send, training and client-side DP settings, its
 * round seed, and for FLoRA its own offered state (only the rounds it has not merged yet); with
 * the bound on the size of the update each plan can produce.
 */
import type { Plan } from '../../shared/protocol/events.js';
import { jobAlpha, STRATEGY_TRAITS, type JobSpec } from '../../shared/protocol/job-spec.js';
import { peftTensorNames } from '../../shared/adapter.js';
import { numel } from '../../shared/tensor.js';
import type { ClientPlan, GlobalState } from '../../aggregation/strategy.js';
import { factorShape } from '../../aggregation/validate-update.js';
import { floraDownlink } from '../../aggregation/flora-downlink.js';
import { ENVELOPE_OVERHEAD, MAX_HEADER_BYTES } from '../../privacy/envelope.js';
import { encodeOfferedAdapter } from '../state-codec.js';
import type { AttemptPhase, Offered } from './attempt.js';
import { usesGradientInit } from './fedsb-init-phase.js';
import { clientSeed } from './selection.js';

/** A client's deterministic key from its token index, zero-padded so that string order is numeric order. */
export function clientKey(tokenIndex: number): string {
  return `t${String(tokenIndex).padStart(10, '0')}`;
}

/**
 * The wire plan of one strategy plan.
 * @param key the client's deterministic key (clientKey), which its round seed derives from
 * @param delta the job's delta, at which the client reports DP-SGD's epsilon (JobPrivacy.delta)
 */
export function wirePlan(spec: JobSpec, p: ClientPlan, round: number, key: string, delta: number): Plan {
  const modules = p.modules.map((m) => ({ path: m.path, outFeatures: m.outFeatures, inFeatures: m.inFeatures, rank: m.rank, alpha: m.alpha }));
  const updateTensors = p.modules.flatMap((m) => p.trainable.map((f) => ({ name: peftTensorNames(m.path)[f], shape: factorShape(m, f) })));
  const rank = p.modules[0]?.rank ?? spec.rank;
  const dp = spec.privacy.client;
  return {
    strategy: spec.strategy,
    variant: p.variant,
    rank,
    alpha: p.modules[0]?.alpha ?? jobAlpha(spec, rank),
    modules,
    trainable: [...p.trainable],
    start: p.start,
    updateTensors,
    training: spec.training,
    ...(dp !== undefined && {
      clientDp: {
        clip: dp.clip,
        ...(dp.noiseMultiplier !== undefined && { noiseMultiplier: dp.noiseMultiplier }),
        ...(dp.targetEpsilon !== undefined && { targetEpsilon: dp.targetEpsilon }),
        delta,
        rounds: spec.rounds,
        ...(usesGradientInit(spec) && spec.fedsb?.noiseMultiplier !== undefined && { initReleaseNoiseMultiplier: spec.fedsb.noiseMultiplier }),
      },
    }),
    seed: clientSeed(spec.seed, round, key),
    extra: {},
  };
}

export interface WiredOffers {
  readonly offers: Map<string, Offered>;
  /** The largest update any offered plan can produce (updateSizeBound). */
  readonly maxUpdateBytes: number;
  /** The state offered to every client without its own (FLoRA's clients have their own). */
  readonly stateBytes: Uint8Array;
}

/**
 * The attempt's offers, one per plan.
 * @param state the global state (null in Fed-SB's init phase)
 * @param keyOf a client's deterministic key (clientKey)
 * @param floraMerged FLoRA: the rounds each client key has merged (0 when unknown)
 */
export function wireOffers(spec: JobSpec, phase: AttemptPhase, state: GlobalState | null, plans: readonly ClientPlan[], round: number, keyOf: (clientId: string) => string, floraMerged: ReadonlyMap<string, number>, delta: number): WiredOffers {
  // FLoRA: clients merge the sum of every earlier round into pristine base weights (docs/protocol.md).
  // (FLoRA's offers are per client, below: only the rounds each one lacks)
  const fresh = STRATEGY_TRAITS[spec.strategy].freshEachRound;
  const stateBytes = encodeOfferedAdapter(fresh ? null : (state?.adapter ?? null));
  const offers = new Map<string, Offered>();
  let maxUpdateBytes = 0;
  for (const p of plans) {
    const key = keyOf(p.clientId);
    let plan = phase.offerPlan(wirePlan(spec, p, round, key, delta));
    let flora: Offered['flora'];
    if (p.start === 'fresh' && state !== null && fresh) {
      // FLoRA: only the rounds this client has not merged (flora.ts floraOffer)
      // (and a module's dense delta where that is smaller than its stack: flora-downlink.ts)
      const f = floraDownlink(state, floraMerged.get(key) ?? 0);
      plan = { ...plan, extra: { ...plan.extra, flora: f.extra } };
      flora = { stateBytes: f.stateBytes, through: f.through };
    }
    offers.set(p.clientId, { plan, strategyPlan: p, status: 'offered', key, ...(flora !== undefined && { flora }) });
    maxUpdateBytes = Math.max(maxUpdateBytes, updateSizeBound(plan));
  }
  return { offers, maxUpdateBytes, stateBytes };
}

/**
 * The largest envelope a plan can produce: its F32 data, a generous safetensors header (names,
 * shapes, metadata with metrics), and the envelope's framing, header and box overhead.
 */
export function updateSizeBound(plan: Plan): number {
  let data = 0;
  let header = 256;
  for (const t of plan.updateTensors) {
    data += 4 * numel(t.shape);
    header += t.name.length + 96;
  }
  return data + header + 8192 + ENVELOPE_OVERHEAD + MAX_HEADER_BYTES + 48;
}
