/**
 * A data owner's local fine-tuning run (`fedlora train`): load a base model folder and a data
 * file, split off a test part, evaluate, train LoRA (plain or DP-SGD), evaluate again, and write
 * the adapter as a PEFT directory. The same steps the agent runs in a round, without the
 * coordinator: a dry run before joining a federation, and a tool for experiments.
 */
import * as tf from '@tensorflow/tfjs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Adapter, AdapterVariant } from '../../shared/adapter.js';
import { FedloraError } from '../../shared/errors.js';
import { writePeftAdapterDir } from '../../shared/peft.js';
import { tableSource, type ExampleSource } from '../data/batches.js';
import { loadData } from '../data/load.js';
import { trainTestSplit } from '../data/split.js';
import { indicesWithLabels, rowCount, subset, type ClassificationTable, type DataSet, type LanguageData } from '../data/table.js';
import { readFactorsOf, type LoraModel } from '../lora/lora-model.js';
import { DECODER_FAMILIES } from '../models/llama-config.js';
import { MLP_MODEL_TYPE } from '../models/mlp-config.js';
import { MlpClassifier } from '../models/mlp.js';
import { evaluate, type Evaluation } from './evaluate.js';
import { train, type TrainOptions, type TrainResult } from './trainer.js';
import { parseThreads, threadsForBackend, TrainWorkerPool } from './train-worker-pool.js';

export interface LocalRunOptions extends Omit<TrainOptions, 'onProgress' | 'parallel'> {
  /** Base model folder (config.json + model.safetensors). */
  readonly modelDir: string;
  /** Data file (.csv / .jsonl, optionally .gz). */
  readonly dataPath: string;
  /** Label column / field. */
  readonly label?: string;
  /** CSV: whether the first line is a header. @default 'auto' */
  readonly header?: boolean | 'auto';
  /** Classification: keep only rows with these labels (e.g. digits 5-9 on a base pre-trained on 0-4). */
  readonly labels?: ReadonlySet<number>;
  /** @default 'lora' */
  readonly variant?: AdapterVariant;
  /** @default 8 */
  readonly rank?: number;
  /** @default 2 * rank */
  readonly alpha?: number;
  /** llama only: PEFT target modules. @default ['q_proj', 'v_proj'] */
  readonly targetModules?: readonly string[] | 'all-linear';
  /** llama only: tokens per example. @default 128 */
  readonly seqLen?: number;
  /** Fraction of the data held out for evaluation; 0 for none. @default 0.2 */
  readonly testFraction?: number;
  /** Where to write the PEFT adapter; none when absent. */
  readonly outDir?: string;
  /**
   * Threads that train data-parallel (train-worker-pool.ts): threads - 1 worker threads, each with
   * its own backend and copy of the model, share every batch with this one. The CLI's default is
   * the machine's cores. @default 1 (this thread alone)
   */
  readonly threads?: number;
  readonly onProgress?: TrainOptions['onProgress'];
}

export interface LocalRunResult {
  readonly modelType: string;
  readonly baseModelSha256: string | undefined;
  readonly trainExamples: number;
  readonly testExamples: number;
  /** On the held-out part, before and after training (absent when testFraction is 0). */
  readonly before?: Evaluation;
  readonly after?: Evaluation;
  readonly train: TrainResult;
  readonly adapterDir?: string;
}

/** The `model_type` of a model folder's config.json. @throws FL_ERR_MODEL_CONFIG */
export async function readModelType(dir: string): Promise<string> {
  const file = join(dir, 'config.json');
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new FedloraError('FL_ERR_MODEL_CONFIG', `cannot read ${file}: ${(e as Error).message}`, { file }, { cause: e });
  }
  const t = (json as { model_type?: unknown }).model_type;
  if (typeof t !== 'string') throw new FedloraError('FL_ERR_MODEL_CONFIG', `${file}: model_type is missing`, { file, field: 'model_type' });
  return t;
}

/** Checks that a table fits the mlp: its feature count and its labels. */
export function checkTableFitsMlp(table: ClassificationTable, inputSize: number, numLabels: number): void {
  if (table.featureNames.length !== inputSize) {
    throw new FedloraError('FL_ERR_DATA', `${table.source}: has ${table.featureNames.length} feature columns, the model expects ${inputSize}`, { file: table.source });
  }
  const bad = table.labels.findIndex((l) => l >= numLabels);
  if (bad >= 0) {
    throw new FedloraError('FL_ERR_DATA', `${table.source}:${table.lines[bad]}: label ${table.labels[bad]} is not a class of the model (0..${numLabels - 1})`, { file: table.source, line: table.lines[bad] });
  }
}

interface Prepared { model: LoraModel; makeSource: (d: DataSet) => ExampleSource }

async function prepare(o: LocalRunOptions, type: string, data: DataSet): Promise<Prepared> {
  const rank = o.rank ?? 8;
  const lora = { variant: o.variant ?? 'lora', rank, alpha: o.alpha ?? 2 * rank, seed: o.seed ?? 0 } as const;
  if (type === MLP_MODEL_TYPE) {
    if (data.kind !== 'classification') throw new FedloraError('FL_ERR_DATA', `${data.source}: the mlp needs numeric features and a label (CSV, or JSONL feature columns), got texts`);
    const model = await MlpClassifier.load(o.modelDir, lora);
    checkTableFitsMlp(data, model.config.input_size, model.config.num_labels);
    return { model, makeSource: (d) => tableSource(d as ClassificationTable) };
  }
  if ((DECODER_FAMILIES as readonly string[]).includes(type)) {
    if (data.kind === 'classification') throw new FedloraError('FL_ERR_DATA', `${data.source}: a ${type} model trains on texts (JSONL {"text": ...} or {"input_ids": [...]}), got a table`);
    const [{ loadLlamaCheckpoint, readLlamaConfig }, { LlamaLoraModel }, { sequenceEncoder }, { tokenSource }] = await Promise.all([
      import('../checkpoint.js'), import('../models/llama-lora.js'), import('../data/sequences.js'), import('../data/batches.js'),
    ]);
    const encoder = await sequenceEncoder(data, o.modelDir, await readLlamaConfig(o.modelDir));
    const { model: base, sha256 } = await loadLlamaCheckpoint(o.modelDir);
    const model = LlamaLoraModel.attach(base, { ...lora, targetModules: o.targetModules ?? ['q_proj', 'v_proj'] }, sha256 === undefined ? {} : { sha256 });
    const seqLen = o.seqLen ?? 128;
    return { model, makeSource: (d) => tokenSource(encoder.encode(d as LanguageData), seqLen, encoder.padId) };
  }
  throw new FedloraError('FL_ERR_MODEL_CONFIG', `${join(o.modelDir, 'config.json')}: model_type '${type}' is not one fedlora trains (${[MLP_MODEL_TYPE, ...DECODER_FAMILIES].join(', ')})`);
}

/** Every factor of every module (frozen ones included): what a PEFT export needs. */
export async function fullAdapter(model: LoraModel): Promise<Adapter> {
  return { layout: model.layout(), factors: await readFactorsOf(model.modules(), 'all') };
}

/** `train` with threads - 1 worker threads building the same model from the same folder. */
async function trainParallel(model: LoraModel, source: ExampleSource, o: LocalRunOptions, threads: number): Promise<TrainResult> {
  const layout = model.layout();
  const first = layout.modules[0]!;
  const pool = await TrainWorkerPool.start({ threads, base: { kind: 'dir', modelDir: o.modelDir }, source });
  try {
    await pool.begin({ kind: 'build', lora: { variant: layout.variant, rank: first.rank, alpha: first.alpha, modules: [...model.modules().keys()], seed: o.seed ?? 0 } }, model);
    return await train(model, source, { ...o, parallel: pool });
  } finally {
    await pool.close();
  }
}

export async function runLocalTraining(o: LocalRunOptions): Promise<LocalRunResult> {
  const type = await readModelType(o.modelDir);
  const loaded = await loadData(o.dataPath, { ...(o.label === undefined ? {} : { label: o.label }), ...(o.header === undefined ? {} : { header: o.header }) });
  const data = o.labels === undefined || loaded.kind !== 'classification' ? loaded : subset(loaded, indicesWithLabels(loaded.labels, new Set(o.labels)));
  const rows = rowCount(data);
  const split = trainTestSplit(rows, o.testFraction ?? 0.2, o.seed ?? 0);
  if (split.train.length === 0) throw new FedloraError('FL_ERR_DATA', `${o.dataPath}: no rows left to train on after holding out the test part`);
  const { model, makeSource } = await prepare(o, type, data);
  try {
    const trainSource = makeSource(subset(data, split.train));
    const testSource = split.test.length > 0 ? makeSource(subset(data, split.test)) : undefined;
    const before = testSource === undefined ? undefined : await evaluate(model, testSource);
    const threads = Math.min(threadsForBackend(parseThreads(o.threads ?? 1), tf.getBackend()), split.train.length);
    const result = threads < 2 ? await train(model, trainSource, o) : await trainParallel(model, trainSource, o, threads);
    const after = testSource === undefined ? undefined : await evaluate(model, testSource);
    if (o.outDir !== undefined) {
      await writePeftAdapterDir(o.outDir, await fullAdapter(model), { taskType: type === MLP_MODEL_TYPE ? null : 'CAUSAL_LM' });
    }
    return {
      modelType: type, baseModelSha256: model.layout().baseModelSha256, trainExamples: split.train.length, testExamples: split.test.length,
      ...(before === undefined ? {} : { before }), ...(after === undefined ? {} : { after }), train: result,
      ...(o.outDir === undefined ? {} : { adapterDir: o.outDir }),
    };
  } finally {
    model.dispose();
  }
}
