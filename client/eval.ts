/**
 * `fedlora eval --model DIR --adapter DIR --data FILE`: how good an exported adapter is, without
 * writing code. Evaluates the base model and the base model with the adapter on every example of
 * the file: accuracy and loss for the mlp classifier, perplexity and loss per token for a decoder
 * (llama family). The adapter is a PEFT directory (`fedlora export`, `GET /api/jobs/:id/adapter`,
 * `fedlora train --out`, or PEFT's own `save_pretrained`).
 *
 * The base is evaluated with the adapter's layers in place at their initial values, where the
 * update s B A (Fed-SB: s B R A) is exactly zero (B = 0, or R = 0), so "base" is the base model.
 */
import { join } from 'node:path';
import type { Adapter } from '../shared/adapter.js';
import { FedloraError } from '../shared/errors.js';
import { readPeftAdapterDir } from '../shared/peft.js';
import { tableSource, type ExampleSource } from './data/batches.js';
import { loadData } from './data/load.js';
import { indicesWithLabels, subset, type ClassificationTable, type LanguageData } from './data/table.js';
import type { LoraModel } from './lora/lora-model.js';
import { DECODER_FAMILIES } from './models/llama-config.js';
import { MLP_MODEL_TYPE } from './models/mlp-config.js';
import { MlpClassifier } from './models/mlp.js';
import { evaluate, type Evaluation } from './train/evaluate.js';
import { readModelType } from './train/local-run.js';

export interface EvalOptions {
  /** Base model folder (config.json + model.safetensors). */
  readonly modelDir: string;
  /** PEFT adapter folder (adapter_config.json + adapter_model.safetensors). */
  readonly adapterDir: string;
  /** Data file (.csv / .jsonl / .txt, optionally .gz), in the formats of docs/data.md. */
  readonly dataPath: string;
  readonly label?: string;
  readonly header?: boolean | 'auto';
  /** Classification: only rows with these labels. */
  readonly labels?: ReadonlySet<number>;
  /** Decoder: tokens per evaluated sequence. @default 128 */
  readonly seqLen?: number;
}

export interface EvalResult {
  readonly modelType: string;
  readonly task: 'classification' | 'causal-lm';
  readonly adapter: { readonly variant: string; readonly modules: number; readonly rank: number; readonly alpha: number; readonly baseModelSha256?: string };
  readonly base: Evaluation;
  readonly adapted: Evaluation;
}

/** One rank and alpha for every module (what the models build); a PEFT rank_pattern with several is refused. */
function uniformRank(adapter: Adapter, dir: string): { rank: number; alpha: number } {
  const first = adapter.layout.modules[0];
  if (first === undefined) throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `${dir}: the adapter has no modules`);
  const other = adapter.layout.modules.find((m) => m.rank !== first.rank || m.alpha !== first.alpha);
  if (other !== undefined) {
    throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `${dir}: module '${other.path}' has rank ${other.rank} / alpha ${other.alpha}, '${first.path}' ${first.rank} / ${first.alpha}; fedlora eval needs one rank and alpha for every module`);
  }
  return { rank: first.rank, alpha: first.alpha };
}

async function build(o: EvalOptions, type: string, adapter: Adapter): Promise<{ model: LoraModel; source: ExampleSource }> {
  const { rank, alpha } = uniformRank(adapter, o.adapterDir);
  const lora = { variant: adapter.layout.variant, rank, alpha, seed: 0 } as const;
  const data = await loadData(o.dataPath, { ...(o.label === undefined ? {} : { label: o.label }), ...(o.header === undefined ? {} : { header: o.header }) });
  if (type === MLP_MODEL_TYPE) {
    if (data.kind !== 'classification') throw new FedloraError('FL_ERR_DATA', `${data.source}: the mlp is evaluated on numeric features and a label (CSV, or JSONL feature columns), got texts`);
    const table = o.labels === undefined ? data : subset(data, indicesWithLabels(data.labels, new Set(o.labels)));
    const model = await MlpClassifier.load(o.modelDir, lora);
    const { checkTableFitsMlp } = await import('./train/local-run.js');
    try {
      checkTableFitsMlp(table, model.config.input_size, model.config.num_labels);
    } catch (e) {
      model.dispose();
      throw e;
    }
    return { model, source: tableSource(table as ClassificationTable) };
  }
  if ((DECODER_FAMILIES as readonly string[]).includes(type)) {
    if (data.kind === 'classification') throw new FedloraError('FL_ERR_DATA', `${data.source}: a ${type} model is evaluated on texts (JSONL {"text": ...}, a .txt file, or {"input_ids": [...]}), got a table`);
    const [{ loadLlamaCheckpoint, readLlamaConfig }, { LlamaLoraModel }, { sequenceEncoder }, { tokenSource }] = await Promise.all([
      import('./checkpoint.js'), import('./models/llama-lora.js'), import('./data/sequences.js'), import('./data/batches.js'),
    ]);
    const encoder = await sequenceEncoder(data, o.modelDir, await readLlamaConfig(o.modelDir));
    const { model: base, sha256 } = await loadLlamaCheckpoint(o.modelDir);
    const model = LlamaLoraModel.attach(base, { ...lora, targetModules: adapter.layout.modules.map((m) => m.path) }, sha256 === undefined ? {} : { sha256 });
    return { model, source: tokenSource(encoder.encode(data as LanguageData), o.seqLen ?? 128, encoder.padId) };
  }
  throw new FedloraError('FL_ERR_MODEL_CONFIG', `${join(o.modelDir, 'config.json')}: model_type '${type}' is not one fedlora evaluates (${[MLP_MODEL_TYPE, ...DECODER_FAMILIES].join(', ')})`);
}

/**
 * Evaluates the base model and the base model with the adapter on every example of the file.
 * @throws FL_ERR_BASE_MODEL_MISMATCH when the adapter records another base model's SHA-256;
 *   FL_ERR_ADAPTER_LAYOUT when it names modules the model lacks or shapes that differ
 */
export async function evaluateAdapter(o: EvalOptions): Promise<EvalResult> {
  const type = await readModelType(o.modelDir);
  const adapter = await readPeftAdapterDir(o.adapterDir);
  const { model, source } = await build(o, type, adapter);
  try {
    const own = model.layout().baseModelSha256;
    const recorded = adapter.layout.baseModelSha256;
    if (own !== undefined && recorded !== undefined && own !== recorded) {
      throw new FedloraError('FL_ERR_BASE_MODEL_MISMATCH', `${o.adapterDir} was trained on the base model with SHA-256 ${recorded}, but ${o.modelDir} has ${own}`, { expected: recorded, actual: own });
    }
    const base = await evaluate(model, source);
    model.loadGlobal(adapter);
    const adapted = await evaluate(model, source);
    const { rank, alpha } = uniformRank(adapter, o.adapterDir);
    return {
      modelType: type,
      task: model.task,
      adapter: { variant: adapter.layout.variant, modules: adapter.layout.modules.length, rank, alpha, ...(recorded !== undefined && { baseModelSha256: recorded }) },
      base,
      adapted,
    };
  } finally {
    model.dispose();
  }
}
