/**
 * Pre-training the base `mlp` (every weight trained, no LoRA) on a public part of a data set,
 * reproducibly from a seed, and saving it as config.json + model.safetensors (mlp-config.ts).
 * The default recipe, `fedlora pretrain mlp`, trains on the digits of labels 0-4; federated LoRA
 * fine-tuning then adapts it to 5-9 (PROVENANCE.md's natural split).
 */
import * as tf from '@tensorflow/tfjs';
import { FedloraError } from '../../shared/errors.js';
import { tableSource } from '../data/batches.js';
import type { ClassificationTable } from '../data/table.js';
import { seededUniform, variableFrom } from '../lora/init.js';
import type { Batch, TrainableModel } from '../lora/lora-model.js';
import { writeMlpCheckpoint } from '../models/mlp-checkpoint.js';
import { MLP_MODEL_TYPE, mlpDenseLayers, type MlpConfig } from '../models/mlp-config.js';
import { mlpActivation } from '../models/mlp.js';
import { softmaxCrossEntropyPerExample } from '../train/losses.js';
import { train, type TrainOptions, type TrainResult } from '../train/trainer.js';

/** Per-feature mean and standard deviation of a table; a constant feature gets std 1. */
export function featureNormalizer(table: ClassificationTable): { mean: Float32Array; std: Float32Array } {
  const d = table.featureNames.length;
  const rows = table.labels.length;
  const mean = new Float64Array(d);
  const sq = new Float64Array(d);
  for (let r = 0; r < rows; r++) for (let j = 0; j < d; j++) mean[j]! += table.features[r * d + j]! / rows;
  for (let r = 0; r < rows; r++) for (let j = 0; j < d; j++) sq[j]! += (table.features[r * d + j]! - mean[j]!) ** 2 / rows;
  const std = Float32Array.from(sq, (v) => (Math.sqrt(v) > 1e-6 ? Math.sqrt(v) : 1));
  return { mean: Float32Array.from(mean), std };
}

/** The mlp with every weight a variable: W^T [in, out] and b per layer (PyTorch nn.Linear's init, seeded). */
export class DenseMlp implements TrainableModel {
  readonly task = 'classification' as const;
  private readonly layers: Array<{ path: string; wT: tf.Variable; b: tf.Variable }>;
  private readonly mean: tf.Tensor1D;
  private readonly invStd: tf.Tensor1D;

  constructor(readonly config: MlpConfig, normalizer: { mean: Float32Array; std: Float32Array }, seed: number) {
    this.layers = mlpDenseLayers(config).map((l, i) => {
      // nn.Linear: W and b ~ U(-1/sqrt(in), 1/sqrt(in))
      const bound = 1 / Math.sqrt(l.inFeatures);
      const wT = variableFrom(tf.tensor2d(seededUniform(l.inFeatures, l.outFeatures, bound, seed * 1000 + 2 * i), [l.inFeatures, l.outFeatures]));
      const b = variableFrom(tf.tensor1d(seededUniform(1, l.outFeatures, bound, seed * 1000 + 2 * i + 1)));
      return { path: l.path, wT, b };
    });
    this.mean = tf.tensor1d(normalizer.mean);
    this.invStd = tf.tensor1d(normalizer.std.map((s) => 1 / s));
  }

  trainableVariables(): tf.Variable[] {
    return this.layers.flatMap((l) => [l.wT, l.b]);
  }

  forward(inputs: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let h: tf.Tensor = tf.mul(tf.sub(inputs, this.mean), this.invStd);
      this.layers.forEach((l, i) => {
        h = tf.add(tf.matMul(h as tf.Tensor2D, l.wT as tf.Tensor2D), l.b);
        if (i < this.layers.length - 1) h = mlpActivation(this.config.hidden_act, h);
      });
      return h;
    });
  }

  lossPerExample(batch: Batch): tf.Tensor1D {
    return tf.tidy(() => softmaxCrossEntropyPerExample(this.forward(batch.inputs), batch.targets));
  }

  loss(batch: Batch): tf.Scalar {
    return tf.tidy(() => tf.mean(this.lossPerExample(batch)) as tf.Scalar);
  }

  /** The checkpoint tensors (weights back in nn.Linear's [out, in] layout), read asynchronously. */
  async weights(): Promise<Map<string, Float32Array>> {
    const read = async (t: tf.Tensor, dispose = false): Promise<Float32Array> => {
      try {
        return (await t.data() as Float32Array).slice();
      } finally {
        if (dispose) t.dispose();
      }
    };
    const out = new Map<string, Float32Array>([
      ['input_norm.mean', await read(this.mean)],
      ['input_norm.std', (await read(this.invStd)).map((v) => 1 / v)],
    ]);
    for (const l of this.layers) {
      out.set(`${l.path}.weight`, await read(tf.transpose(l.wT), true));
      out.set(`${l.path}.bias`, await read(l.b));
    }
    return out;
  }

  dispose(): void {
    tf.dispose([this.mean, this.invStd, ...this.trainableVariables()]);
  }
}

export interface PretrainMlpOptions extends TrainOptions {
  /** @default [64, 64] */
  readonly hiddenSizes?: readonly number[];
  /** Classes of the head. @default max label + 1 */
  readonly numLabels?: number;
  /** @default 'relu' */
  readonly hiddenAct?: MlpConfig['hidden_act'];
}

/**
 * Pre-trains a DenseMlp on a table, seeded (init and batch order from `seed`).
 * @returns the model (the caller disposes it), its config and the training result
 */
export async function pretrainMlp(table: ClassificationTable, options: PretrainMlpOptions = {}): Promise<{ model: DenseMlp; config: MlpConfig; result: TrainResult }> {
  if (table.labels.length === 0) throw new FedloraError('FL_ERR_DATA', `${table.source}: no rows to pre-train on`);
  const maxLabel = table.labels.reduce((a, b) => Math.max(a, b), 0);
  const numLabels = options.numLabels ?? Math.max(2, maxLabel + 1);
  if (maxLabel >= numLabels) throw new FedloraError('FL_ERR_DATA', `${table.source}: label ${maxLabel} does not fit a head of ${numLabels} classes`);
  const config: MlpConfig = {
    model_type: MLP_MODEL_TYPE,
    input_size: table.featureNames.length,
    hidden_sizes: [...(options.hiddenSizes ?? [64, 64])],
    num_labels: numLabels,
    hidden_act: options.hiddenAct ?? 'relu',
  };
  const model = new DenseMlp(config, featureNormalizer(table), options.seed ?? 0);
  try {
    const result = await train(model, tableSource(table), options);
    return { model, config, result };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** Saves a pre-trained DenseMlp as a checkpoint folder. @returns the SHA-256 of model.safetensors */
export async function saveDenseMlp(model: DenseMlp, dir: string): Promise<string> {
  return writeMlpCheckpoint(dir, model.config, await model.weights());
}
