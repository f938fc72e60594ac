/**
 * The `llama` model with LoRA on the modules a job names: the `LoraModel` the trainer and the
 * agent use for causal language modelling. The frozen base is client/models/llama.ts; each
 * targeted linear layer is replaced by a `LoraDense` (client/lora/lora-dense.ts) that keeps the
 * frozen weight and adds the factors, under the Hugging Face module path
 * (`model.layers.3.self_attn.q_proj`), so the exported adapter loads in PEFT without renaming.
 *
 * Target modules are matched as PEFT matches `target_modules`: with a list, a module is adapted
 * when its path equals a target or ends with `.` + target (`q_proj`, `self_attn.v_proj`, or a
 * full path); a string is a regex the whole path must match; `all-linear` adapts every linear
 * layer of the decoder (not lm_head), as in PEFT.
 */
import * as tf from '@tensorflow/tfjs';
import type { Adapter, AdapterLayout, AdapterVariant } from '../../shared/adapter.js';
import { FedloraError } from '../../shared/errors.js';
import { peftTargetMatches } from '../../shared/peft.js';
import { moduleSeed } from '../lora/init.js';
import { LoraDense } from '../lora/lora-dense.js';
import { extractUpdateOf, layoutOf, loadGlobalInto, trainableVariablesOf, type Batch, type LoraModel } from '../lora/lora-model.js';
import { LoraLinear } from './llama-linear.js';
import type { LlamaModel } from './llama.js';

export interface LlamaLoraOptions {
  /** As PEFT's `target_modules`: a list of names or paths, a regex string, or `all-linear`. */
  readonly targetModules: readonly string[] | string;
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

/**
 * The module paths of `paths` that PEFT would adapt for `targets`, in model order: a list matches
 * a whole name or a `.`-suffix, a string is a regex the whole path must match (shared/peft.ts).
 */
export function matchTargetModules(paths: readonly string[], targets: readonly string[] | string): string[] {
  if (targets === 'all-linear') return [...paths];
  return paths.filter((p) => peftTargetMatches(targets, p));
}

export class LlamaLoraModel implements LoraModel {
  readonly task = 'causal-lm' as const;

  private constructor(
    /** The base model; it owns the LoRA layers now sitting in its slots. */
    readonly base: LlamaModel,
    private readonly loraModules: Map<string, LoraDense>,
    /** SHA-256 of the base model's weights file, when known (carried into the adapter layout). */
    readonly baseModelSha256: string | undefined,
    readonly baseModelName: string | undefined,
  ) {}

  /**
   * Wraps the targeted linear layers of a frozen base model in LoRA layers. The base model is
   * taken over: dispose the LlamaLoraModel, not the base.
   * @param identity the base model's SHA-256 and name, for the adapter layout
   * @throws FL_ERR_INVALID_ARGUMENT when no module matches, or the base is being pre-trained
   */
  static attach(base: LlamaModel, options: LlamaLoraOptions, identity: { sha256?: string; name?: string } = {}): LlamaLoraModel {
    if (base.isPretraining) {
      throw new FedloraError('FL_ERR_INVALID_ARGUMENT', 'llama: LoRA needs a frozen base model (build it without `trainable`)');
    }
    const paths = matchTargetModules(base.modulePaths(), options.targetModules);
    if (paths.length === 0) {
      throw new FedloraError('FL_ERR_INVALID_ARGUMENT',
        `llama: target modules ${JSON.stringify(options.targetModules)} match no module; the linear modules are q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj`,
        { targetModules: options.targetModules });
    }
    const modules = new Map<string, LoraDense>();
    for (const path of paths) {
      const frozen = base.linear(path);
      // The weight stays on the device: the LoRA layer takes over this copy (no CPU round trip).
      const w = frozen.weightOutIn();
      let dense: LoraDense;
      try {
        dense = new LoraDense({
          path, variant: options.variant, inFeatures: frozen.inFeatures, outFeatures: frozen.outFeatures,
          ...(options.moduleRanks?.[path] ?? { rank: options.rank, ...(options.alpha !== undefined ? { alpha: options.alpha } : {}) }),
          weight: w, seed: moduleSeed(options.seed ?? 0, path),
        });
      } catch (e) {
        w.dispose();
        throw e;
      }
      base.replaceLinear(path, new LoraLinear(dense)).dispose();
      modules.set(path, dense);
    }
    return new LlamaLoraModel(base, modules, identity.sha256, identity.name);
  }

  modules(): ReadonlyMap<string, LoraDense> {
    return this.loraModules;
  }

  layout(): AdapterLayout {
    return layoutOf(this.loraModules, {
      ...(this.baseModelSha256 !== undefined ? { baseModelSha256: this.baseModelSha256 } : {}),
      ...(this.baseModelName !== undefined ? { baseModelName: this.baseModelName } : {}),
    });
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

  /** @param inputs token ids [N, T] int32 @returns logits [N, T, vocab] */
  forward(inputs: tf.Tensor): tf.Tensor {
    return this.base.logits(this.checkIds(inputs, 'inputs'));
  }

  /** Each sequence's mean negative log-likelihood over its counted target tokens, [N]. */
  lossPerExample(batch: Batch): tf.Tensor1D {
    return tf.tidy(() => {
      const nll = this.base.tokenNll(this.checkIds(batch.inputs, 'inputs'), this.checkIds(batch.targets, 'targets'));
      const mask = batch.mask ?? tf.onesLike(nll);
      return tf.div(tf.sum(tf.mul(nll, mask), 1), tf.maximum(tf.sum(mask, 1), 1)) as tf.Tensor1D;
    });
  }

  /** Mean negative log-likelihood over every counted target token of the batch. */
  loss(batch: Batch): tf.Scalar {
    return tf.tidy(() => {
      const nll = this.base.tokenNll(this.checkIds(batch.inputs, 'inputs'), this.checkIds(batch.targets, 'targets'));
      if (batch.mask === undefined) return tf.mean(nll) as tf.Scalar;
      return tf.div(tf.sum(tf.mul(nll, batch.mask)), tf.maximum(tf.sum(batch.mask), 1)) as tf.Scalar;
    });
  }

  dispose(): void {
    this.base.dispose();
  }

  private checkIds(t: tf.Tensor, what: string): tf.Tensor2D {
    if (t.rank !== 2 || t.dtype !== 'int32') {
      throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `llama: ${what} must be int32 token ids [N, T], got ${t.dtype} [${t.shape.join(', ')}]`);
    }
    return t as tf.Tensor2D;
  }
}
