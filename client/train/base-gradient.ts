/**
 * The gradient of the summed loss with respect to each adapted module's frozen base weight W0
 * [m, n], over a set of examples: what Fed-SB's LoRA-SB initialisation starts from (docs/strategies.md,
 * "fedsb": G = sum over ~50 samples of grad_W loss; aggregation/fedsb.ts `fedsbInitFromGradient`
 * turns the clients' summed G into the frozen A, B and R0).
 *
 * For y = x W0^T, dL/dW0 = dy^T x, from the (x, dy) each LoRA layer's frozen matmul reports in the
 * backward pass (lora-dense.ts `setBaseGradientTap`); W0 itself never becomes a variable.
 *
 * The gradient is data. With `dp`, each example's gradient (all modules together) is clipped to C
 * (norms from x and dy alone, privacy's ghostNormsSq) and N(0, (sigma C)^2) is added to the sum:
 * one Gaussian mechanism on the whole set, which the accountant books as q = 1, one step
 * (privacy/accountant.ts). Without `dp` the sum is exact and not private.
 */
import * as tf from '@tensorflow/tfjs';
import { clipFactors, ghostNormsSq, privatizeClippedSum } from '../../privacy/dp-sgd.js';
import type { RandomSource } from '../../privacy/random.js';
import { FedloraError } from '../../shared/errors.js';
import { disposeBatch, type ExampleSource } from '../data/batches.js';
import { variableFrom } from '../lora/init.js';
import type { LoraModel } from '../lora/lora-model.js';

export interface BaseGradientOptions {
  /** Examples per forward/backward pass. @default 64 */
  readonly chunk?: number;
  /** Clip each example's gradient to clipNorm and add N(0, (noiseMultiplier clipNorm)^2) to the sum. */
  readonly dp?: { readonly clipNorm: number; readonly noiseMultiplier: number; readonly randomSource?: RandomSource };
}

export interface BaseGradients {
  /** Per module path, G = sum over the examples of dL_i/dW0, [m, n] row-major. */
  readonly gradients: Map<string, Float32Array>;
  readonly examples: number;
  /** With dp: what the accountant books (one plain Gaussian mechanism: q = 1, one step). */
  readonly dp?: { readonly q: 1; readonly steps: 1; readonly noiseMultiplier: number; readonly clipNorm: number };
}

interface Rec { x: tf.Tensor2D; dy: tf.Tensor2D }

/** See the file comment. */
export async function baseWeightGradients(model: LoraModel, source: ExampleSource, indices: ArrayLike<number>, options: BaseGradientOptions = {}): Promise<BaseGradients> {
  const chunk = options.chunk ?? 64;
  if (!Number.isInteger(chunk) || chunk < 1) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `chunk must be a positive integer, got ${chunk}`);
  const modules = [...model.modules()];
  const sums = new Map(modules.map(([path, m]) => [path, new Float64Array(m.outFeatures * m.inFeatures)]));
  const probe = variableFrom(tf.scalar(0));
  try {
    for (let start = 0; start < indices.length; start += chunk) {
      const idx = Array.from({ length: Math.min(chunk, indices.length - start) }, (_, i) => indices[start + i]!);
      const recs = new Map<string, Rec>();
      const batch = source.batch(idx);
      try {
        for (const [path, m] of modules) {
          m.setBaseGradientTap({ probe, onGrad: (x, dy) => {
            if (recs.has(path)) throw new FedloraError('FL_ERR_TRAINING', `module '${path}' ran twice in one forward pass; its base gradient needs one`);
            recs.set(path, { x: tf.keep(tf.clone(x)), dy: tf.keep(tf.clone(dy)) });
          } });
        }
        try {
          const { value, grads } = tf.variableGrads(() => tf.sum(model.lossPerExample(batch)) as tf.Scalar, [probe]);
          tf.dispose([value, ...Object.values(grads)]);
        } finally {
          for (const [, m] of modules) m.setBaseGradientTap(null);
        }
        const factors = options.dp === undefined ? null : await clipFactorsOf(recs, modules.map(([p]) => p), idx.length, options.dp.clipNorm);
        for (const [path] of modules) {
          const r = recs.get(path);
          if (r === undefined) throw new FedloraError('FL_ERR_TRAINING', `module '${path}' did not run in the forward pass`);
          const rowsPerExample = r.x.shape[0] / idx.length;
          const g = tf.tidy(() => {
            let dy: tf.Tensor2D = r.dy;
            if (factors !== null) {
              const rowFactors = new Float32Array(r.x.shape[0]);
              for (let i = 0; i < idx.length; i++) rowFactors.fill(factors[i]!, i * rowsPerExample, (i + 1) * rowsPerExample);
              dy = tf.mul(dy, tf.tensor2d(rowFactors, [rowFactors.length, 1]));
            }
            // dy^T x [m, n]: transpose the narrower of the two (wasm's transposed matmuls are slow)
            return r.dy.shape[1] <= r.x.shape[1] ? tf.matMul(tf.transpose(dy), r.x) : tf.transpose(tf.matMul(tf.transpose(r.x), dy));
          });
          const values = await g.data();
          g.dispose();
          const into = sums.get(path)!;
          for (let j = 0; j < values.length; j++) into[j] = into[j]! + values[j]!;
        }
      } finally {
        for (const r of recs.values()) tf.dispose([r.x, r.dy]);
        disposeBatch(batch);
      }
    }
  } finally {
    probe.dispose();
  }
  const paths = modules.map(([p]) => p);
  if (options.dp === undefined) {
    return { gradients: new Map(paths.map((p) => [p, Float32Array.from(sums.get(p)!)])), examples: indices.length };
  }
  const { clipNorm, noiseMultiplier, randomSource } = options.dp;
  // a sum, not a mean: divide by 1
  const noisy = privatizeClippedSum(paths.map((p) => sums.get(p)!), { sensitivity: clipNorm, noiseMultiplier, expectedBatchSize: 1, ...(randomSource === undefined ? {} : { source: randomSource }) });
  return { gradients: new Map(paths.map((p, i) => [p, noisy[i]!])), examples: indices.length, dp: { q: 1, steps: 1, noiseMultiplier, clipNorm } };
}

async function clipFactorsOf(recs: Map<string, Rec>, paths: string[], examples: number, clipNorm: number): Promise<Float64Array> {
  const normsSq = new Float64Array(examples);
  for (const path of paths) {
    const r = recs.get(path);
    if (r === undefined) throw new FedloraError('FL_ERR_TRAINING', `module '${path}' did not run in the forward pass`);
    const [x, dy] = await Promise.all([r.x.data() as Promise<Float32Array>, r.dy.data() as Promise<Float32Array>]);
    const ns = ghostNormsSq(dy, x, { batch: examples, seqLen: r.x.shape[0] / examples, p: r.dy.shape[1], q: r.x.shape[1] });
    for (let i = 0; i < examples; i++) normsSq[i] = normsSq[i]! + ns[i]!;
  }
  return clipFactors(Array.from(normsSq, Math.sqrt), clipNorm);
}
