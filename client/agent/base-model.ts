/**
 * The client's base model as the agent sees it: read once from `--model DIR` (an `mlp` or a
 * `llama` checkpoint, told apart by config.json's `model_type`), identified by the SHA-256 of its
 * weights, reporting the modules it can adapt, and building a fresh LoRA model for each round's
 * plan (variant, rank, alpha and modules come from the coordinator, not from the client).
 *
 * A LoRA model is built per round rather than kept: FLoRA's plans start from pristine base
 * weights plus the sum of earlier rounds (`start: fresh`), and ranks may change between rounds.
 * For the `mlp` the checkpoint stays in memory and a build is cheap; a `llama` is re-read from
 * its folder, one tensor at a time (client/checkpoint.ts).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AdapterVariant } from '../../shared/adapter.js';
import { FedloraError } from '../../shared/errors.js';
import type { ModuleShape } from '../../shared/protocol/job-spec.js';
import type { LoraModel } from '../lora/lora-model.js';
import type { MlpCheckpoint } from '../models/mlp-checkpoint.js';
import type { LlamaConfig } from '../models/llama-config.js';

export type BaseModelKind = 'mlp' | 'llama';

/** What a round's plan fixes for the LoRA model. */
export interface LoraBuild {
  readonly variant: AdapterVariant;
  readonly rank: number;
  readonly alpha: number;
  /** Module paths to adapt. */
  readonly modules: readonly string[];
  /** Modules whose rank and alpha differ from `rank`, `alpha` (capped at min(m, n)). @default none */
  readonly moduleRanks?: Readonly<Record<string, { readonly rank: number; readonly alpha: number }>>;
  /** Seed of the fresh factors (moduleSeed(seed, path) per module). */
  readonly seed: number;
}

export interface BaseModel {
  readonly kind: BaseModelKind;
  readonly dir: string;
  /** SHA-256 (hex) of the weights file: the model's identity the job is checked against. */
  readonly sha256: string;
  /** Every module LoRA can adapt, with the shape of its frozen weight. */
  readonly adaptable: readonly ModuleShape[];
  /** mlp: the classifier's input width and classes; llama: its vocabulary and context. */
  readonly mlp?: { readonly inputSize: number; readonly numLabels: number };
  readonly llama?: LlamaConfig;
  /** A fresh LoRA model for a plan; the caller disposes it. */
  build(lora: LoraBuild): Promise<LoraModel>;
}

/** The modules of `adaptable` a job's targetModules select (PEFT matching: the path, or its end after a dot). */
export function matchModules(adaptable: readonly ModuleShape[], targets: readonly string[]): ModuleShape[] {
  return adaptable.filter((m) => targets.some((t) => m.path === t || m.path.endsWith(`.${t}`)));
}

async function modelType(dir: string): Promise<string | undefined> {
  const path = join(dir, 'config.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new FedloraError('FL_ERR_MODEL_CONFIG', `cannot read ${path}: ${(e as Error).message}`, { file: path }, { cause: e });
  }
  try {
    const json = JSON.parse(text) as { model_type?: unknown };
    return typeof json.model_type === 'string' ? json.model_type : undefined;
  } catch (e) {
    throw new FedloraError('FL_ERR_MODEL_CONFIG', `${path}: not valid JSON: ${(e as Error).message}`, { file: path }, { cause: e });
  }
}

/**
 * Reads a model folder (config.json + weights) and hashes its weights.
 * @throws FL_ERR_MODEL_CONFIG / FL_ERR_CHECKPOINT naming the file and the problem
 */
export async function loadBaseModel(dir: string): Promise<BaseModel> {
  const type = await modelType(dir);
  const { MLP_MODEL_TYPE } = await import('../models/mlp-config.js');
  return type === MLP_MODEL_TYPE ? loadMlp(dir) : loadLlama(dir);
}

async function loadMlp(dir: string): Promise<BaseModel> {
  const { readMlpCheckpoint } = await import('../models/mlp-checkpoint.js');
  const { mlpDenseLayers } = await import('../models/mlp-config.js');
  const checkpoint: MlpCheckpoint = await readMlpCheckpoint(dir);
  const adaptable = mlpDenseLayers(checkpoint.config).map((l) => ({ path: l.path, outFeatures: l.outFeatures, inFeatures: l.inFeatures }));
  return {
    kind: 'mlp',
    dir,
    sha256: checkpoint.sha256,
    adaptable,
    mlp: { inputSize: checkpoint.config.input_size, numLabels: checkpoint.config.num_labels },
    async build(lora) {
      // The mlp adapts every dense layer (client/models/mlp.ts); a plan naming fewer would leave
      // trained factors out of the update, so it is refused instead.
      const all = adaptable.map((m) => m.path);
      if (lora.modules.length !== all.length || !all.every((p) => lora.modules.includes(p))) {
        throw new FedloraError('FL_ERR_BASE_MODEL_MISMATCH', `the mlp adapts every dense layer (${all.join(', ')}); the plan names ${lora.modules.join(', ')}: set the job's targetModules to all of them`);
      }
      const { MlpClassifier } = await import('../models/mlp.js');
      return MlpClassifier.fromCheckpoint(checkpoint, { variant: lora.variant, rank: lora.rank, alpha: lora.alpha, seed: lora.seed, ...(lora.moduleRanks !== undefined && { moduleRanks: lora.moduleRanks }) });
    },
  };
}

async function loadLlama(dir: string): Promise<BaseModel> {
  const { readLlamaConfig, checkpointSha256, loadLlamaCheckpoint } = await import('../checkpoint.js');
  const { LLAMA_LINEAR_MODULES, llamaLinearShape, llamaModulePath } = await import('../models/llama-names.js');
  const config = await readLlamaConfig(dir);
  const sha256 = await checkpointSha256(dir);
  const adaptable: ModuleShape[] = [];
  for (let layer = 0; layer < config.numLayers; layer++) {
    for (const name of LLAMA_LINEAR_MODULES) {
      const [outFeatures, inFeatures] = llamaLinearShape(config, name);
      adaptable.push({ path: llamaModulePath(layer, name), outFeatures, inFeatures });
    }
  }
  return {
    kind: 'llama',
    dir,
    sha256,
    adaptable,
    llama: config,
    async build(lora) {
      const { LlamaLoraModel } = await import('../models/llama-lora.js');
      const { model } = await loadLlamaCheckpoint(dir, { hash: false });
      try {
        return LlamaLoraModel.attach(model, { targetModules: lora.modules, variant: lora.variant, rank: lora.rank, alpha: lora.alpha, seed: lora.seed, ...(lora.moduleRanks !== undefined && { moduleRanks: lora.moduleRanks }) }, { sha256 });
      } catch (e) {
        model.dispose();
        throw e;
      }
    },
  };
}
