/**
 * The linear layers of the `llama` model (bias-free, as in Hugging Face Llama): frozen for
 * fine-tuning, trainable for pre-training, and a LoRA-wrapped one (client/lora/lora-dense.ts).
 * All take x [..., in] and return [..., out]; the model passes [B, T, hidden] so the first axis
 * counts examples, which is what a LoRA layer's gradient tap (DP-SGD ghost norms) needs.
 *
 * Weights are stored pre-transposed, [in, out], so the forward pass is a plain `x @ W^T` without
 * a transposed matmul (docs/training.md, "Backends": an 8x difference on wasm); frozen
 * ones also keep [out, in] for the custom gradient dx = dy W (client/lora/frozen-matmul.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { frozenMatmul, type FrozenPair } from '../lora/frozen-matmul.js';
import type { LoraDense } from '../lora/lora-dense.js';
import { matmulPlainGrad } from './llama-matmul.js';

export interface LlamaLinear {
  /** Hugging Face module path, e.g. `model.layers.0.self_attn.q_proj` (or `lm_head`). */
  readonly path: string;
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** y = x W^T for x [..., in]; y is [..., out]. */
  apply(x: tf.Tensor): tf.Tensor;
  /** The base weight in the Hugging Face layout [out, in], as a new tensor the caller disposes. */
  weightOutIn(): tf.Tensor2D;
  /** Variables this layer trains (none for a frozen layer). */
  trainableVariables(): tf.Variable[];
  dispose(): void;
}

/** Applies a 2-D matmul to x [..., in], keeping the leading axes. */
function overLastAxis(x: tf.Tensor, inF: number, outF: number, f: (x2: tf.Tensor2D) => tf.Tensor2D): tf.Tensor {
  if (x.rank === 2) return f(x as tf.Tensor2D);
  return tf.tidy(() => tf.reshape(f(tf.reshape(x, [-1, inF])), [...x.shape.slice(0, -1), outF]));
}

/** A frozen linear layer: y = x W^T with W stored as W^T [in, out] and W [out, in]. */
export class FrozenLinear implements LlamaLinear {
  readonly inFeatures: number;
  readonly outFeatures: number;
  private readonly pair: FrozenPair;
  private readonly ownsBackward: boolean;
  private readonly naive: boolean;
  private readonly matmul: (x: tf.Tensor2D) => tf.Tensor2D;

  /**
   * @param path the module path
   * @param weight W in the Hugging Face layout [out, in]; the layer owns it from now on, unless
   *   `sharedWeight` says the caller keeps it (tied embeddings)
   * @param sharedWeight @default false
   * @param naive multiply by W with a transposed matmul and tfjs' gradient (the benchmark's
   *   baseline; no second copy) @default false
   */
  constructor(readonly path: string, weight: tf.Tensor2D, sharedWeight = false, naive = false) {
    [this.outFeatures, this.inFeatures] = weight.shape;
    this.pair = { backward: weight, forward: naive ? weight : tf.keep(tf.transpose(weight)) };
    this.ownsBackward = !sharedWeight;
    this.naive = naive;
    this.matmul = naive ? (x) => tf.matMul(x, weight, false, true) : frozenMatmul(() => this.pair);
  }

  apply(x: tf.Tensor): tf.Tensor {
    return overLastAxis(x, this.inFeatures, this.outFeatures, this.matmul);
  }

  weightOutIn(): tf.Tensor2D {
    return this.pair.backward.clone();
  }

  trainableVariables(): tf.Variable[] {
    return [];
  }

  dispose(): void {
    if (!this.naive) this.pair.forward.dispose();
    if (this.ownsBackward) this.pair.backward.dispose();
  }
}

/** A trainable linear layer for pre-training: a variable W^T [in, out], y = x @ W^T. */
export class TrainableLinear implements LlamaLinear {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly variable: tf.Variable<tf.Rank.R2>;

  /** @param weight W in the Hugging Face layout [out, in]; disposed once copied. */
  constructor(readonly path: string, weight: tf.Tensor2D) {
    [this.outFeatures, this.inFeatures] = weight.shape;
    const t = tf.transpose(weight);
    this.variable = tf.variable(t, true);
    t.dispose();
    weight.dispose();
  }

  apply(x: tf.Tensor): tf.Tensor {
    return overLastAxis(x, this.inFeatures, this.outFeatures, (x2) => matmulPlainGrad(x2, this.variable));
  }

  weightOutIn(): tf.Tensor2D {
    return tf.transpose(this.variable);
  }

  trainableVariables(): tf.Variable[] {
    return [this.variable];
  }

  dispose(): void {
    this.variable.dispose();
  }
}

/** A LoRA layer in a model slot: y = x W0^T + s B (R) A x (see lora-dense.ts). */
export class LoraLinear implements LlamaLinear {
  readonly path: string;
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(readonly dense: LoraDense) {
    this.path = dense.path;
    this.inFeatures = dense.inFeatures;
    this.outFeatures = dense.outFeatures;
  }

  apply(x: tf.Tensor): tf.Tensor {
    return this.dense.forward(x);
  }

  /** W0 only: the base weight, without the adapter (the adapter is exported on its own). */
  weightOutIn(): tf.Tensor2D {
    return this.dense.baseWeightTensor();
  }

  trainableVariables(): tf.Variable[] {
    return this.dense.trainableVariables();
  }

  dispose(): void {
    this.dense.dispose();
  }
}
