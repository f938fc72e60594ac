/**
 * The sim's data: a labelled table split, from one seed, into a held-out test set (the reported
 * accuracy), a public part the base `mlp` is pre-trained on (the coordinator's side in a real
 * deployment: data nobody minds sharing), and the federated rest, which the partitioner deals out
 * to the simulated clients. Then the base model is pre-trained and saved as a checkpoint folder
 * that every agent loads (the same SHA-256 the job names).
 */
import { FedloraError } from '../shared/errors.js';
import type { ClassificationTable } from '../client/data/table.js';
import { DIGITS_DATA } from '../client/data/bundled.js';

/** The bundled digits copy (UCI optical digits, 1,797 rows, 64 features, labels 0-9; LICENSE.digits). */
export const DIGITS_FILE = DIGITS_DATA;

export interface DataSplitOptions {
  /** Fraction of all rows held out for the test set. @default 0.2 */
  readonly testFraction: number;
  /** Fraction of the remaining rows held apart as public pre-training data. @default 0.2 */
  readonly publicFraction: number;
  /**
   * Only public rows with these labels are used for pre-training (the others join the federated
   * pool), so the base model may not know some classes at all. @default undefined (every label)
   */
  readonly publicLabels?: ReadonlySet<number>;
  readonly seed: number;
}

export interface SimData {
  /** Where the rows came from. */
  readonly source: string;
  readonly numLabels: number;
  readonly test: ClassificationTable;
  readonly public: ClassificationTable;
  /** The federated pool the partitioner splits. */
  readonly federated: ClassificationTable;
}

/**
 * Loads `digits` (the bundled copy) or a CSV/JSONL file of numeric features and a label.
 * @param label the label column of a FILE (name, 0-based index or `last`). @default the loader's default (`label`, else the last column)
 * @throws FL_ERR_DATA for a file of texts or a malformed line (file:line); FL_ERR_INVALID_ARGUMENT for `fortunes` (texts: language-task.ts loads them)
 */
export async function loadSimTable(data: string, label?: string): Promise<ClassificationTable> {
  if (data === 'fortunes') {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', '--data fortunes is the language task (texts, not a table): runSim loads it through language-task.ts', { option: 'data' });
  }
  if (data === 'digits') {
    const { loadCsv } = await import('../client/data/csv.js');
    return loadCsv(DIGITS_FILE, { header: false });
  }
  const { loadData } = await import('../client/data/load.js');
  const table = await loadData(data, label === undefined ? {} : { label });
  if (table.kind !== 'classification') throw new FedloraError('FL_ERR_DATA', `${data}: fedlora sim trains an mlp on numeric features and a label; this file holds texts`, { file: data });
  return table;
}

/** Splits a table into test, public and federated parts (seeded; see the module comment). */
export async function splitSimData(table: ClassificationTable, options: DataSplitOptions): Promise<SimData> {
  const { trainTestSplit } = await import('../client/data/split.js');
  const { subset } = await import('../client/data/table.js');
  if (table.labels.length < 10) throw new FedloraError('FL_ERR_DATA', `${table.source}: ${table.labels.length} rows are too few to simulate a federation`, { file: table.source });
  const numLabels = table.labels.reduce((a, b) => Math.max(a, b), 0) + 1;
  const first = trainTestSplit(table.labels.length, options.testFraction, options.seed);
  const rest = subset(table, first.train);
  const second = trainTestSplit(rest.labels.length, options.publicFraction, `${options.seed}:public`);
  const keep = options.publicLabels;
  const publicRows = keep === undefined ? second.test : second.test.filter((r) => keep.has(rest.labels[r]!));
  const isPublic = new Uint8Array(rest.labels.length);
  for (const r of publicRows) isPublic[r] = 1;
  const federatedRows = Int32Array.from({ length: rest.labels.length }, (_, i) => i).filter((i) => isPublic[i] === 0);
  if (publicRows.length === 0) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `${table.source}: the public fraction ${options.publicFraction} (labels ${keep === undefined ? 'all' : [...keep].join(',')}) leaves no row to pre-train on`, { option: 'public-fraction' });
  return { source: table.source, numLabels, test: subset(table, first.test), public: subset(rest, publicRows), federated: subset(rest, federatedRows) };
}

export interface BaseModelOptions {
  /** @default [64, 64] */
  readonly hiddenSizes: readonly number[];
  /** Pre-training epochs on the public part. @default 20 */
  readonly epochs: number;
  readonly seed: number;
}

/**
 * Pre-trains the base mlp on the public part (client/pretrain/mlp.ts, every weight trained) and
 * saves it to `dir`. Needs a tfjs backend already chosen.
 * @returns the SHA-256 of model.safetensors and the base model's test accuracy and loss
 */
export async function pretrainBase(data: SimData, dir: string, options: BaseModelOptions): Promise<{ sha256: string; accuracy: number; loss: number; seconds: number }> {
  const { pretrainMlp, saveDenseMlp } = await import('../client/pretrain/mlp.js');
  const { evaluate } = await import('../client/train/evaluate.js');
  const { tableSource } = await import('../client/data/batches.js');
  const { model, result } = await pretrainMlp(data.public, { hiddenSizes: options.hiddenSizes, numLabels: data.numLabels, epochs: options.epochs, batchSize: 32, lr: 3e-3, seed: options.seed });
  try {
    const sha256 = await saveDenseMlp(model, dir);
    const ev = await evaluate(model, tableSource(data.test));
    return { sha256, accuracy: ev.accuracy ?? Number.NaN, loss: ev.loss, seconds: result.seconds };
  } finally {
    model.dispose();
  }
}
