/**
 * Fed-SB's init phase on the client (docs/protocol.md, "Fed-SB's init phase"; docs/strategies.md, "fedsb"):
 * an offer whose `plan.extra.phase` is `fedsb-init` asks not for training but for the summed
 * gradient of the loss w.r.t. each planned module's frozen base weight W0, over the first
 * `plan.extra.samples` local examples (file order), optionally clipped per example and noised
 * (`plan.extra.dp`). The update holds `base_model.model.<path>.fedsb_G.weight` [m, n] per module
 * and `fedlora.examples` = the examples summed over; the coordinator sums the clients' G and
 * makes the frozen A, B and R0 from it.
 */
import { z } from 'zod';
import { FedloraError } from '../../shared/errors.js';
import type { Offer, Plan } from '../../shared/protocol/events.js';
import { encodeSafetensors } from '../../shared/safetensors/index.js';
import { makeTensor, type Tensor } from '../../shared/tensor.js';
import type { BaseModel } from './base-model.js';
import type { LocalData } from './local-data.js';
import { EXAMPLES_METADATA_KEY, METRICS_METADATA_KEY } from './update-payload.js';

/** `plan.extra` of an init-phase offer. */
export const FedSbInitExtraSchema = z.object({
  phase: z.literal('fedsb-init'),
  samples: z.int().min(1),
  dp: z.strictObject({ clip: z.number().positive(), noiseMultiplier: z.number().positive() }).optional(),
});
export type FedSbInitExtra = z.infer<typeof FedSbInitExtraSchema>;

/** Whether an offer is Fed-SB's init phase rather than a training round. */
export function isFedSbInitPlan(plan: Plan): boolean {
  return plan.extra.phase === 'fedsb-init';
}

/** The init phase's result: the update payload and what the agent reports. */
export interface FedSbInitGradient {
  readonly payload: Uint8Array;
  readonly examples: number;
  readonly seconds: number;
  /** The release's noise, when the plan asked for it (one Gaussian mechanism, q = 1). */
  readonly dp?: { readonly noiseMultiplier: number; readonly clipNorm: number };
}

/**
 * Computes and encodes this client's summed base-weight gradient for an init-phase offer.
 * @throws FL_ERR_INVALID_ARGUMENT when `plan.extra` is malformed; FL_ERR_UPDATE_TENSORS when a planned tensor is not a module's gradient
 */
export async function fedsbInitGradient(offer: Offer, base: BaseModel, data: LocalData): Promise<FedSbInitGradient> {
  const started = Date.now();
  const plan = offer.plan;
  const parsed = FedSbInitExtraSchema.safeParse(plan.extra);
  if (!parsed.success) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `round ${offer.round}: plan.extra of the fedsb init phase is malformed: ${parsed.error.message}`, { field: 'plan.extra' });
  const extra = parsed.data;
  const first = plan.modules[0];
  if (first === undefined) throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `round ${offer.round}: the plan names no module`);
  // R = 0 in a fresh fedsb model, so it computes exactly the base model: the gradient is the base model's.
  const model = await base.build({ variant: 'fedsb', rank: first.rank, alpha: first.alpha, modules: plan.modules.map((m) => m.path), seed: plan.seed });
  try {
    const { baseWeightGradients } = await import('../train/base-gradient.js');
    const count = Math.min(extra.samples, data.examples);
    const indices = Array.from({ length: count }, (_, i) => i);
    const result = await baseWeightGradients(model, data.source, indices, extra.dp === undefined ? {} : { dp: { clipNorm: extra.dp.clip, noiseMultiplier: extra.dp.noiseMultiplier } });
    const tensors: Tensor[] = plan.updateTensors.map((spec) => {
      const path = spec.name.startsWith('base_model.model.') && spec.name.endsWith('.fedsb_G.weight') ? spec.name.slice('base_model.model.'.length, -'.fedsb_G.weight'.length) : undefined;
      const g = path === undefined ? undefined : result.gradients.get(path);
      if (g === undefined) throw new FedloraError('FL_ERR_UPDATE_TENSORS', `the fedsb init plan asks for tensor '${spec.name}', which is not the gradient of an adapted module`, { tensor: spec.name });
      return makeTensor(spec.name, spec.shape, g);
    });
    const payload = encodeSafetensors(tensors, { [EXAMPLES_METADATA_KEY]: String(count), [METRICS_METADATA_KEY]: '{}' });
    return {
      payload,
      examples: count,
      seconds: (Date.now() - started) / 1000,
      ...(extra.dp !== undefined && { dp: { noiseMultiplier: extra.dp.noiseMultiplier, clipNorm: extra.dp.clip } }),
    };
  } finally {
    model.dispose();
  }
}
