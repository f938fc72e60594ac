/**
 * The contract every model with LoRA layers implements (`mlp`, `llama`), and helpers that give
 * the adapter-facing half of it for free from the model's LoRA modules.
 *
 * A model implementing it:
 *  - builds its LoRA-wrapped dense layers as `LoraDense` (lora-dense.ts), one per adapted module,
 *    keyed by the Hugging Face module path (`model.layers.3.self_attn.q_proj`, `layers.0`, ...);
 *  - keeps every other weight frozen (plain tensors, not variables), so the only trainable
 *    variables are the modules' factors;
 *  - implements `layout`, `extractUpdate`, `loadGlobal` and `trainableVariables` by calling
 *    `layoutOf`, `extractUpdateOf`, `loadGlobalInto` and `trainableVariablesOf` below;
 *  - says its task, so the trainer knows how to evaluate it.
 *
 * Tensor ownership: `forward`, `loss` and `lossPerExample` return tensors the caller owns and
 * create no other lasting tensor (run them under tf.tidy or a gradient function); the model owns
 * its weights and frees them in `dispose()`.
 */
import type * as tf from '@tensorflow/tfjs';
import type { Adapter, AdapterLayout, AdapterModule, AdapterVariant, ModuleFactors } from '../../shared/adapter.js';
import { FedloraError } from '../../shared/errors.js';
import type { LoraDense } from './lora-dense.js';

/** `classification`: logits [N, classes] vs labels [N]. `causal-lm`: logits [N, T, vocab] vs next tokens [N, T]. */
export type ModelTask = 'classification' | 'causal-lm';

/** One batch of examples, as tensors the caller owns. */
export interface Batch {
  /** classification: features [N, d] float32; causal-lm: token ids [N, T] int32. */
  readonly inputs: tf.Tensor;
  /** classification: class ids [N] int32; causal-lm: the next token ids [N, T] int32. */
  readonly targets: tf.Tensor;
  /** causal-lm only: [N, T] float32, 1 where a target counts, 0 for padding. All ones when absent. */
  readonly mask?: tf.Tensor;
}

/** What the trainer needs of a model: its task, its trainable variables and its losses. */
export interface TrainableModel {
  readonly task: ModelTask;
  /** Every trainable variable (for a LoraModel: the modules' factors, use `trainableVariablesOf`). */
  trainableVariables(): tf.Variable[];
  /** The logits for the inputs (see `ModelTask` for the shapes). */
  forward(inputs: tf.Tensor): tf.Tensor;
  /** The scalar loss a plain optimizer step minimises (mean cross-entropy over examples or target tokens). */
  loss(batch: Batch): tf.Scalar;
  /**
   * One loss per example [N] (for a causal LM, each sequence's mean over its counted tokens), so
   * DP-SGD can clip each example's gradient; their mean is what `loss` returns for a classifier.
   */
  lossPerExample(batch: Batch): tf.Tensor1D;
}

export interface LoraModel extends TrainableModel {
  /** The LoRA-wrapped layers, keyed by Hugging Face module path, in a stable order. */
  modules(): ReadonlyMap<string, LoraDense>;
  /** The adapter layout of the modules (use `layoutOf`). */
  layout(): AdapterLayout;
  /**
   * The trainable factors as an adapter in PEFT names (use `extractUpdateOf`): what a client
   * sends. Asynchronous: the values are read back from the device without a synchronous read.
   */
  extractUpdate(): Promise<Adapter>;
  /** Sets the factors a round's global state carries (use `loadGlobalInto`). */
  loadGlobal(adapter: Adapter): void;
  /** Frees every tensor of the model. */
  dispose(): void;
}

/** The layout of the given modules; every module must have the same variant. */
export function layoutOf(
  modules: ReadonlyMap<string, LoraDense>,
  base: { baseModelSha256?: string; baseModelName?: string } = {},
): AdapterLayout {
  let variant: AdapterVariant | undefined;
  const entries: AdapterModule[] = [];
  for (const [path, m] of modules) {
    if (variant !== undefined && m.variant !== variant) {
      throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `module '${path}' has variant '${m.variant}', others have '${variant}'`);
    }
    variant = m.variant;
    entries.push({ path, outFeatures: m.outFeatures, inFeatures: m.inFeatures, rank: m.rank, alpha: m.alpha });
  }
  if (variant === undefined) throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', 'a model must have at least one LoRA module');
  return { variant, modules: entries, ...base };
}

/**
 * The trainable factors of every module (lora: A and B; ffa: B; fedsb: R), in PEFT layout.
 * @param layout the model's layout (from `layoutOf`), carried into the adapter
 */
export async function extractUpdateOf(modules: ReadonlyMap<string, LoraDense>, layout: AdapterLayout): Promise<Adapter> {
  return { layout, factors: await readFactorsOf(modules, 'trainable') };
}

/** Every module's factors (`all` or only the `trainable` ones), read from the device in parallel. */
export async function readFactorsOf(modules: ReadonlyMap<string, LoraDense>, which: 'all' | 'trainable'): Promise<Map<string, ModuleFactors>> {
  const entries = [...modules];
  const read = await Promise.all(entries.map(([, m]) => m.readFactors(which)));
  return new Map(entries.map(([path], i) => [path, read[i]!]));
}

/**
 * Loads a global adapter into the modules: every factor it carries for a module is set, frozen
 * ones included (FFA's A, Fed-SB's A and B). Modules it does not name keep their factors.
 * @throws FL_ERR_ADAPTER_LAYOUT when it names a module the model lacks, or its variant or a
 *   module's shape or rank differs from the model's
 */
export function loadGlobalInto(modules: ReadonlyMap<string, LoraDense>, adapter: Adapter): void {
  const layoutByPath = new Map(adapter.layout.modules.map((m) => [m.path, m]));
  for (const [path, factors] of adapter.factors) {
    const m = modules.get(path);
    if (m === undefined) throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `the adapter names module '${path}', which this model does not adapt`);
    if (adapter.layout.variant !== m.variant) {
      throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `module '${path}': the adapter's variant is '${adapter.layout.variant}', the model's is '${m.variant}'`);
    }
    const declared = layoutByPath.get(path);
    if (declared !== undefined && (declared.rank !== m.rank || declared.inFeatures !== m.inFeatures || declared.outFeatures !== m.outFeatures)) {
      throw new FedloraError('FL_ERR_ADAPTER_LAYOUT',
        `module '${path}': the adapter declares [out ${declared.outFeatures}, in ${declared.inFeatures}, r ${declared.rank}], the model has [out ${m.outFeatures}, in ${m.inFeatures}, r ${m.rank}]`);
    }
    m.setFactors(factors);
  }
}

/** The trainable variables of every module, in module order. */
export function trainableVariablesOf(modules: ReadonlyMap<string, LoraDense>): tf.Variable[] {
  return [...modules.values()].flatMap((m) => m.trainableVariables());
}
