/**
 * The `mlp` model with LoRA on every dense layer (docs/training.md):
 *   h_0 = (x - mean) / std;  h_{i+1} = act(LoRA_i(h_i));  logits = LoRA_head(h_L)
 * Layers, names and the checkpoint layout: mlp-config.ts. The base weights are frozen; only the
 * LoRA factors of the chosen variant train.
 */
import * as tf from '@tensorflow/tfjs';
import type { Adapter, AdapterLayout, AdapterVariant } from '../../shared/adapter.js';
import { FedloraError } from '../../shared/errors.js';
import { moduleSeed } from '../lora/init.js';
import { LoraDense } from '../lora/lora-dense.js';
import { extractUpdateOf, layoutOf, loadGlobalInto, trainableVariablesOf, type Batch, type LoraModel } from '../lora/lora-model.js';
import { softmaxCrossEntropyPerExample } from '../train/losses.js';
import { readMlpCheckpoint, type MlpCheckpoint } from './mlp-checkpoint.js';
import { mlpDenseLayers, type MlpConfig } from './mlp-config.js';

export interface MlpLoraOptions {
  readonly variant: AdapterVariant;
  readonly rank: number;
  /** @default rank (s = 1) */
  readonly alpha?: number;
  /** Job seed; each module's initial factors come from moduleSeed(seed, path). @default 0 */
  readonly seed?: number;
  /**
   * Per module path, a rank and alpha other than `rank` and `alpha`: the coordinator caps a
   * module's rank at min(m, n) (a small head), keeping the scaling. @default none
   */
  readonly moduleRanks?: Readonly<Record<string, { readonly rank: number; readonly alpha: number }>>;
}

/** Applies the hidden activation of the config. */
export function mlpActivation(name: MlpConfig['hidden_act'], x: tf.Tensor): tf.Tensor {
  switch (name) {
    case 'relu':
      return tf.relu(x);
    case 'tanh':
      return tf.tanh(x);
    case 'gelu': {
      // tanh approximation, as transformers' gelu_new
      const c = Math.sqrt(2 / Math.PI);
      return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(tf.mul(tf.add(x, tf.mul(tf.mul(x, tf.mul(x, x)), 0.044715)), c))));
    }
    default: {
      const unreachable: never = name;
      throw new FedloraError('FL_ERR_MODEL_CONFIG', `unknown hidden_act '${String(unreachable)}'`);
    }
  }
}

export class MlpClassifier implements LoraModel {
  readonly task = 'classification' as const;
  readonly config: MlpConfig;
  /** SHA-256 of the base model's weights file, when loaded from one. */
  readonly baseModelSha256: string | undefined;
  private readonly loraModules: Map<string, LoraDense>;
  private readonly mean: tf.Tensor1D;
  private readonly invStd: tf.Tensor1D;

  private constructor(config: MlpConfig, modules: Map<string, LoraDense>, mean: tf.Tensor1D, invStd: tf.Tensor1D, sha256: string | undefined) {
    this.config = config;
    this.loraModules = modules;
    this.mean = mean;
    this.invStd = invStd;
    this.baseModelSha256 = sha256;
  }

  /** Loads config.json + model.safetensors from a folder. */
  static async load(dir: string, lora: MlpLoraOptions): Promise<MlpClassifier> {
    return MlpClassifier.fromCheckpoint(await readMlpCheckpoint(dir), lora);
  }

  /** Builds the model from checkpoint tensors (read from disk, or made in memory). */
  static fromCheckpoint(checkpoint: MlpCheckpoint | Omit<MlpCheckpoint, 'sha256'>, lora: MlpLoraOptions): MlpClassifier {
    const { config, weights } = checkpoint;
    const get = (name: string): Float32Array => {
      const w = weights.get(name);
      if (w === undefined) throw new FedloraError('FL_ERR_CHECKPOINT', `mlp checkpoint: tensor '${name}' is missing`, { tensor: name });
      return w;
    };
    const modules = new Map<string, LoraDense>();
    try {
      for (const l of mlpDenseLayers(config)) {
        modules.set(l.path, new LoraDense({
          path: l.path, variant: lora.variant, inFeatures: l.inFeatures, outFeatures: l.outFeatures,
          ...(lora.moduleRanks?.[l.path] ?? { rank: lora.rank, ...(lora.alpha === undefined ? {} : { alpha: lora.alpha }) }),
          weight: get(`${l.path}.weight`), bias: get(`${l.path}.bias`), seed: moduleSeed(lora.seed ?? 0, l.path),
        }));
      }
      const std = get('input_norm.std');
      const bad = std.findIndex((s) => !(s > 0) || !Number.isFinite(s));
      if (bad >= 0) throw new FedloraError('FL_ERR_CHECKPOINT', `mlp checkpoint: input_norm.std[${bad}] must be > 0, got ${std[bad]}`, { tensor: 'input_norm.std' });
      const mean = tf.tensor1d(get('input_norm.mean'));
      const invStd = tf.tensor1d(std.map((s) => 1 / s));
      return new MlpClassifier(config, modules, mean, invStd, 'sha256' in checkpoint ? checkpoint.sha256 : undefined);
    } catch (e) {
      for (const m of modules.values()) m.dispose();
      throw e;
    }
  }

  modules(): ReadonlyMap<string, LoraDense> {
    return this.loraModules;
  }

  layout(): AdapterLayout {
    return layoutOf(this.loraModules, this.baseModelSha256 === undefined ? {} : { baseModelSha256: this.baseModelSha256 });
  }

  extractUpdate(): Promise<Adapter> {
    return extractUpdateOf(this.loraModules, this.layout());
  }

  loadGlobal(adapter: Adapter): void {
    loadGlobalInto(this.loraModules, adapter);
  }

  trainableVariables(): tf.Variable[] {
    return trainableVariablesOf(this.loraModules);
  }

  /** @param inputs raw features [N, input_size] @returns logits [N, num_labels] */
  forward(inputs: tf.Tensor): tf.Tensor {
    const n = this.config.input_size;
    if (inputs.rank !== 2 || inputs.shape[1] !== n) {
      throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `mlp: inputs must be [N, ${n}], got [${inputs.shape.join(', ')}]`);
    }
    return tf.tidy(() => {
      let h: tf.Tensor = tf.mul(tf.sub(inputs, this.mean), this.invStd);
      const layers = [...this.loraModules.values()];
      layers.forEach((layer, i) => {
        h = layer.forward(h);
        if (i < layers.length - 1) h = mlpActivation(this.config.hidden_act, h);
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

  dispose(): void {
    for (const m of this.loraModules.values()) m.dispose();
    tf.dispose([this.mean, this.invStd]);
  }
}
