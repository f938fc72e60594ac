/**
 * Client-side DP-SGD (Abadi et al. 2016, Algorithm 1; docs/privacy.md, "Differential privacy
 * mechanisms") on the trainable LoRA tensors: the per-example clipped gradient sum of a sampled batch.
 * Sampling, noise and the division by the expected batch size are privacy/dp-sgd.ts's pure
 * functions; the trainer (trainer.ts) strings the step together.
 *
 * Two ways to the clipped sum, which a test shows agree:
 *  - `ghost` (default for LoRA models): one backward pass of the summed loss with every trainable
 *    LoRA matmul y = x V tapped (lora/gradient-tap.ts). Example i's gradient of V is x_i^T dy_i, so
 *    its squared norm comes from x and dy alone (privacy's ghostNormsSq: Gram form or the small
 *    per-example matrix, whichever is cheaper), summed over all factors; the clip factors
 *    c_i = min(1, C / norm_i) then give the clipped sum x^T diag(c) dy directly, without the
 *    second backward pass of Li et al. 2022 (exact here because every trainable tensor is the
 *    right operand of one matmul per forward pass; otherwise this refuses and says to use
 *    `microbatch`).
 *  - `microbatch`: one backward pass per example (batches of 1), each gradient clipped and summed
 *    by privacy's DpSgdAccumulator. Slower; works for any model.
 */
import * as tf from '@tensorflow/tfjs';
import { clipFactors, clipSensitivity, DpSgdAccumulator, ghostNormsSq, type ClipSpec } from '../../privacy/dp-sgd.js';
import { FedloraError } from '../../shared/errors.js';
import { disposeBatch, type ExampleSource } from '../data/batches.js';
import type { LoraModel, TrainableModel } from '../lora/lora-model.js';
import { GradientRecorder } from './gradient-recorder.js';

export type DpClipMode = 'ghost' | 'microbatch';

/**
 * The clipping bound: one C for all trainable tensors of an example together, or one per LoRA
 * factor (DP-LoRA clips the A and B gradients separately: { A: C_A, B: C_B }), for a sensitivity
 * of sqrt(sum C_g^2). Per-factor bounds need a LoRA model and a bound for every factor it trains.
 */
export type DpClip = number | Readonly<Partial<Record<'A' | 'B' | 'R', number>>>;

/**
 * The privacy/ ClipSpec of a bound for the model's trainable variables (in their order).
 * @throws FL_ERR_PRIVACY_ARGUMENT when a trained factor has no bound, or a bound names no trained factor
 */
export function clipSpecFor(model: TrainableModel, clip: DpClip): ClipSpec {
  if (typeof clip === 'number') return clip;
  if (!isLoraModel(model)) throw new FedloraError('FL_ERR_PRIVACY_ARGUMENT', 'per-factor clipping bounds need a model with LoRA modules');
  const names = [...model.modules().values()].flatMap((m) => m.trainableFactorNames());
  const groups = [...new Set(names)];
  for (const g of groups) {
    if (clip[g] === undefined) throw new FedloraError('FL_ERR_PRIVACY_ARGUMENT', `per-factor clipping: the model trains ${g} but no bound for ${g} was given`);
  }
  for (const g of Object.keys(clip)) {
    if (!groups.includes(g as 'A')) throw new FedloraError('FL_ERR_PRIVACY_ARGUMENT', `per-factor clipping: a bound for ${g} was given but the model trains only ${groups.join(', ')}`);
  }
  const spec = { groupOf: names.map((n) => groups.indexOf(n)), clipNorms: groups.map((g) => clip[g]!) };
  clipSensitivity(spec);
  return spec;
}

export interface ClippedSum {
  /** Per trainable variable (in `model.trainableVariables()` order), the sum of clipped example gradients, flat float64. */
  readonly sums: Float64Array[];
  /** Each example's gradient norm before clipping. */
  readonly norms: number[];
  /** Examples whose gradient norm was <= C (left unscaled). */
  readonly unclipped: number;
  /** Sum of the examples' losses (for progress only: it is not private and never leaves the client). */
  readonly lossSum: number;
}

function isLoraModel(m: TrainableModel): m is LoraModel {
  return typeof (m as Partial<LoraModel>).modules === 'function';
}

/**
 * The clipped per-example gradient sum over the examples at `indices`.
 * @param clip C > 0, or per-factor bounds (DpClip)
 * @param mode @default 'ghost'
 * @param chunk examples per forward/backward pass in ghost mode (bounds memory) @default 64
 */
export async function clippedGradientSum(
  model: TrainableModel, source: ExampleSource, indices: ArrayLike<number>, clip: DpClip,
  mode: DpClipMode = 'ghost', chunk = 64,
): Promise<ClippedSum> {
  const vars = model.trainableVariables();
  const spec = clipSpecFor(model, clip);
  if (mode === 'microbatch') return microbatchSum(model, source, indices, spec, vars);
  if (!isLoraModel(model)) throw new FedloraError('FL_ERR_TRAINING', 'ghost clipping needs a model with LoRA modules; use the microbatch mode');
  const sums = vars.map((v) => new Float64Array(v.size));
  const norms: number[] = [];
  let unclipped = 0;
  let lossSum = 0;
  for (let start = 0; start < indices.length; start += chunk) {
    const idx = Array.from({ length: Math.min(chunk, indices.length - start) }, (_, i) => indices[start + i]!);
    const part = await ghostChunk(model, source, idx, spec, vars);
    part.sums.forEach((s, k) => { const into = sums[k]!; for (let j = 0; j < s.length; j++) into[j] = into[j]! + s[j]!; });
    norms.push(...part.norms);
    unclipped += part.unclipped;
    lossSum += part.lossSum;
  }
  return { sums, norms, unclipped, lossSum };
}

async function ghostChunk(model: LoraModel, source: ExampleSource, idx: number[], spec: ClipSpec, vars: tf.Variable[]): Promise<ClippedSum> {
  const recorder = new GradientRecorder();
  const batch = source.batch(idx);
  const modules = [...model.modules().values()];
  try {
    for (const m of modules) m.setGradientTap(recorder);
    let lossValue: number;
    try {
      const { value, grads } = tf.variableGrads(() => tf.sum(model.lossPerExample(batch)) as tf.Scalar, vars);
      lossValue = (await value.data())[0]!;
      tf.dispose([value, ...Object.values(grads)]);
    } finally {
      for (const m of modules) m.setGradientTap(null);
    }
    const byVar = new Map<tf.Variable, (typeof recorder.records)[number]>();
    for (const r of recorder.records) {
      if (byVar.has(r.variable)) throw new FedloraError('FL_ERR_TRAINING', 'ghost clipping needs each trainable factor used once per forward pass; use the microbatch mode');
      byVar.set(r.variable, r);
    }
    const missing = vars.find((v) => !byVar.has(v));
    if (missing !== undefined) throw new FedloraError('FL_ERR_TRAINING', `ghost clipping: trainable variable '${missing.name}' is not a tapped LoRA factor; use the microbatch mode`);
    // per-example squared norms, summed over the factors of each clipping group
    const groupOf = typeof spec === 'number' ? vars.map(() => 0) : spec.groupOf;
    const bounds = typeof spec === 'number' ? [spec] : spec.clipNorms;
    const normsSq = bounds.map(() => new Float64Array(idx.length));
    for (const [k, v] of vars.entries()) {
      const r = byVar.get(v)!;
      const [x, dy] = await Promise.all([r.x.data() as Promise<Float32Array>, r.dy.data() as Promise<Float32Array>]);
      const rows = r.x.shape[0];
      if (r.examples !== idx.length || rows % r.examples !== 0) throw new FedloraError('FL_ERR_TRAINING', `ghost clipping: a tapped matmul saw ${rows} rows for ${r.examples} examples, expected a multiple of ${idx.length}`);
      const ns = ghostNormsSq(dy, x, { batch: r.examples, seqLen: rows / r.examples, p: r.dy.shape[1], q: r.x.shape[1] });
      const into = normsSq[groupOf[k]!]!;
      for (let i = 0; i < ns.length; i++) into[i] = into[i]! + ns[i]!;
    }
    const groupFactors = normsSq.map((sq, g) => clipFactors(Array.from(sq, Math.sqrt), bounds[g]!));
    const norms = Array.from({ length: idx.length }, (_, i) => Math.sqrt(normsSq.reduce((t, sq) => t + sq[i]!, 0)));
    const sums: Float64Array[] = [];
    for (const [k, v] of vars.entries()) {
      const factors = groupFactors[groupOf[k]!]!;
      const r = byVar.get(v)!;
      const rowsPerExample = r.x.shape[0] / r.examples;
      const rowFactors = new Float32Array(r.x.shape[0]);
      for (let i = 0; i < idx.length; i++) rowFactors.fill(factors[i]!, i * rowsPerExample, (i + 1) * rowsPerExample);
      // x^T diag(c) dy: the clipped sum of the examples' gradients x_i^T dy_i
      const g = tf.tidy(() => tf.matMul(r.x, tf.mul(r.dy, tf.tensor2d(rowFactors, [rowFactors.length, 1])), true, false));
      sums.push(Float64Array.from(await g.data()));
      g.dispose();
    }
    const unclipped = norms.filter((_, i) => groupFactors.every((f) => f[i] === 1)).length;
    return { sums, norms, unclipped, lossSum: lossValue };
  } finally {
    recorder.dispose();
    disposeBatch(batch);
  }
}

async function microbatchSum(model: TrainableModel, source: ExampleSource, indices: ArrayLike<number>, spec: ClipSpec, vars: tf.Variable[]): Promise<ClippedSum> {
  const acc = new DpSgdAccumulator(vars.map((v) => v.size), spec);
  const norms: number[] = [];
  let lossSum = 0;
  for (let k = 0; k < indices.length; k++) {
    const batch = source.batch([indices[k]!]);
    try {
      const { value, grads } = tf.variableGrads(() => tf.sum(model.lossPerExample(batch)) as tf.Scalar, vars);
      const arrays = await Promise.all(vars.map((v) => grads[v.name]!.data() as Promise<Float32Array>));
      lossSum += (await value.data())[0]!;
      tf.dispose([value, ...Object.values(grads)]);
      const groupNorms = acc.add(arrays);
      norms.push(Math.sqrt(groupNorms.reduce((t, n) => t + n * n, 0)));
    } finally {
      disposeBatch(batch);
    }
  }
  return { sums: acc.clippedSum.map((s) => Float64Array.from(s)), norms, unclipped: acc.unclipped, lossSum };
}
