/**
 * Secure aggregation (privacy/secagg/) applied to the strategies whose aggregate is a sum
 * (fedavg, ffa, fedsb) and to Fed-SB's initial gradient sum. The protocol sums flat vectors, so
 * this file fixes the flat layout on both sides:
 * - client: `secureSumInput` takes its update's trainable deltas (update - global), in the order
 *   of `strategy.trainableVectors(global)`, clips them to L2 norm C (privacy/clipping.ts) and
 *   optionally adds its distributed-DP noise share (privacy/secagg/distributed-noise.ts);
 * - coordinator: `aggregateSecureSum` cuts the unmasked sum back into SummedDeltas and takes the
 *   strategy's step trainable = global + sum / n.
 * Weights are uniform (1/n), as under DP-FedAvg: the coordinator never sees n_k per client.
 * flora is refused with FL_ERR_NOT_A_SUM: its stack keeps each client's factors apart.
 */
import { parsePeftTensorName, type AdapterModule } from '../shared/adapter.js';
import { FedloraError } from '../shared/errors.js';
import { numel } from '../shared/tensor.js';
import { clipL2 } from '../privacy/clipping.js';
import { addNoiseShare } from '../privacy/secagg/distributed-noise.js';
import type { SecAggResult } from '../privacy/secagg/server.js';
import type { RandomSource } from '../privacy/random.js';
import type { AggregationReport, ClientUpdate, GlobalState, RoundResult, Strategy, SummedDelta, TrainableVector } from './strategy.js';

/** @throws FL_ERR_NOT_A_SUM for a strategy whose aggregate is not a sum (flora) */
export function requireSecureSumStrategy(strategy: Strategy): void {
  if (!strategy.aggregateIsSum) {
    throw new FedloraError(
      'FL_ERR_NOT_A_SUM',
      `secure aggregation cannot protect '${strategy.name}': the coordinator only learns a sum, and its aggregate is not a sum of client updates (FLoRA stacks each client's factors apart); use fedavg, ffa or fedsb, or turn secure aggregation off`,
      { strategy: strategy.name },
    );
  }
}

function globalVectors(strategy: Strategy, state: GlobalState): TrainableVector[] {
  requireSecureSumStrategy(strategy);
  if (state.adapter === null) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', `secure sum (${strategy.name}): needs the global state the clients trained from`);
  return strategy.trainableVectors(state.adapter);
}

/** Length of the flat vector a round of `strategy` securely sums (the secagg vectorLength). */
export function secureSumLength(strategy: Strategy, state: GlobalState): number {
  return globalVectors(strategy, state).reduce((s, v) => s + v.data.length, 0);
}

export interface SecureSumInputOptions {
  /** C: the update is clipped to this L2 norm (needed for DP; bounds the values for quantisation). Absent: no clipping. */
  readonly clipNorm?: number;
  /** Distributed DP: z and h; each client adds N(0, (z C)^2 / h). Needs clipNorm. */
  readonly noise?: { readonly noiseMultiplier: number; readonly minHonestClients: number; readonly random?: RandomSource };
}

/**
 * A client's flat input to the secure sum: its clipped (and noised) trainable deltas.
 * @returns the vector and the L2 norm of the deltas before clipping
 */
export function secureSumInput(strategy: Strategy, state: GlobalState, update: ClientUpdate, options: SecureSumInputOptions = {}): { vector: Float64Array; norm: number } {
  const global = globalVectors(strategy, state);
  strategy.checkUpdate(state, update);
  const byKey = new Map(strategy.trainableVectors(update.adapter).map((v) => [`${v.path}\0${v.factor}`, v]));
  const deltas = global.map((g) => {
    const v = byKey.get(`${g.path}\0${g.factor}`);
    if (v === undefined || v.data.length !== g.data.length) {
      throw new FedloraError('FL_ERR_AGGREGATION_INPUT', `${update.source}: ${g.tensorName} has ${v?.data.length ?? 0} values, the global one ${g.data.length}; a secure sum needs the global ranks`, { source: update.source, tensor: g.tensorName });
    }
    const d = new Float32Array(g.data.length);
    for (let i = 0; i < d.length; i++) d[i] = v.data[i]! - g.data[i]!;
    return d;
  });
  let parts: readonly Float32Array[] = deltas;
  let norm: number;
  if (options.clipNorm !== undefined) {
    const c = clipL2(deltas, options.clipNorm);
    parts = c.clipped;
    norm = c.norm;
  } else {
    norm = Math.sqrt(deltas.reduce((s, d) => s + d.reduce((a, x) => a + x * x, 0), 0));
  }
  const vector = new Float64Array(parts.reduce((s, p) => s + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    vector.set(p, offset);
    offset += p.length;
  }
  if (options.noise !== undefined) {
    if (options.clipNorm === undefined) throw new FedloraError('FL_ERR_PRIVACY_ARGUMENT', 'secure sum: distributed DP noise needs clipNorm (the sensitivity)');
    addNoiseShare(vector, options.noise.noiseMultiplier, options.clipNorm, options.noise.minHonestClients, options.noise.random);
  }
  return { vector, norm };
}

/** The report of a securely aggregated round: what GET /api/jobs/:id can show. */
export interface SecureSumReport {
  readonly secure: true;
  readonly survivors: number;
  readonly droppedClients: number;
  readonly errorBound: number;
  readonly badShares: number;
}

/**
 * The next state from the protocol's unmasked sum: trainable = global + sum / divisor.
 * @param divisor n in the average; @default the number of survivors (DP: pass the sampled count)
 */
export function aggregateSecureSum(strategy: Strategy, state: GlobalState, result: Pick<SecAggResult, 'sum' | 'survivors' | 'dropped' | 'badShares' | 'errorBound'>, divisor = result.survivors.length): RoundResult & { report: AggregationReport & { secureAggregation: SecureSumReport } } {
  const global = globalVectors(strategy, state);
  const total = global.reduce((s, v) => s + v.data.length, 0);
  if (result.sum.length !== total) throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `secure sum (${strategy.name}): the sum has ${result.sum.length} values, the trainable tensors ${total}`);
  let offset = 0;
  const sums: SummedDelta[] = global.map((g) => {
    const data = result.sum.subarray(offset, offset + g.data.length);
    offset += g.data.length;
    return { path: g.path, factor: g.factor, data };
  });
  const out = strategy.aggregateSummedDeltas(state, sums, divisor);
  const d = result.dropped;
  const secureAggregation: SecureSumReport = {
    secure: true,
    survivors: result.survivors.length,
    droppedClients: d.advertise.length + d.shareKeys.length + d.maskedInput.length,
    errorBound: result.errorBound / divisor,
    badShares: result.badShares.length,
  };
  return { ...out, report: { ...out.report, clients: result.survivors.length, secureAggregation } };
}

/** Fed-SB's initial gradient as a flat vector for the secure sum: modules in spec order, G [m, n] row-major. */
export function gradientSumInput(modules: readonly AdapterModule[], gradients: ReadonlyMap<string, Float32Array>): Float64Array {
  const out = new Float64Array(modules.reduce((s, m) => s + m.outFeatures * m.inFeatures, 0));
  let offset = 0;
  for (const m of modules) {
    const g = gradients.get(m.path);
    const size = m.outFeatures * m.inFeatures;
    if (g === undefined || g.length !== size) throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `secure gradient sum: '${m.path}' needs a gradient of ${size} values, got ${g?.length ?? 'none'}`);
    out.set(g, offset);
    offset += size;
  }
  return out;
}

/** The unmasked gradient sum cut back into per-module gradients, for fedsbInitFromGradient. */
export function gradientsFromSum(modules: readonly AdapterModule[], sum: Float64Array): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  let offset = 0;
  for (const m of modules) {
    const size = m.outFeatures * m.inFeatures;
    out.set(m.path, Float32Array.from(sum.subarray(offset, offset + size)));
    offset += size;
  }
  if (offset !== sum.length) throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `secure gradient sum: the sum has ${sum.length} values, the modules ${offset}`);
  return out;
}

/**
 * The unmasked sum cut into SummedDeltas along a plan's update tensors (PEFT names, flattened in
 * the plan's order: the layout the runtime's clients mask in), for `aggregateSummedDeltas`.
 * @throws FL_ERR_SHAPE_MISMATCH when the sizes disagree; FL_ERR_AGGREGATION_INPUT for a name that is not a LoRA factor
 */
export function summedDeltasFromTensors(sum: Float64Array, tensors: readonly { readonly name: string; readonly shape: readonly number[] }[]): SummedDelta[] {
  let offset = 0;
  const out = tensors.map((t) => {
    const parsed = parsePeftTensorName(t.name);
    if (parsed === undefined) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', `secure sum: '${t.name}' is not a PEFT LoRA factor name`, { tensor: t.name });
    const size = numel(t.shape);
    const data = sum.subarray(offset, offset + size);
    offset += size;
    return { path: parsed.path, factor: parsed.factor, data };
  });
  if (offset !== sum.length) throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `secure sum: the sum has ${sum.length} values, the plan's tensors ${offset}`);
  return out;
}
