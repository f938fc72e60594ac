/**
 * The client's local data: loaded once, checked against the base model, before the agent even
 * connects, so a data file with errors is refused before any training with the file and line
 * named (issue 5). Loading itself is client/data's (CSV / JSONL, FL_ERR_DATA with file:line); this
 * adds the checks that need the model: feature width and label range for the `mlp`, tokenisation
 * into next-token sequences for the `llama`.
 */
import { FedloraError } from '../../shared/errors.js';
import type { ExampleSource } from '../data/batches.js';
import type { DataSet } from '../data/table.js';
import type { BaseModel } from './base-model.js';

export interface LocalData {
  readonly file: string;
  /** n_k: the example count the client reports as its weight. */
  readonly examples: number;
  readonly source: ExampleSource;
}

export interface LocalDataOptions {
  /** Label column or field (client/data). @default the loaders' default */
  readonly label?: string;
  /** llama: tokens per training example. @default min(128, the model's context) */
  readonly seqLen?: number;
}

function dataError(file: string, line: number, problem: string): FedloraError {
  return new FedloraError('FL_ERR_DATA', `${file}:${line}: ${problem}`, { file, line });
}

/**
 * Loads and checks the data file for the model.
 * @throws FL_ERR_DATA naming the file and line of the first problem
 */
export async function loadLocalData(file: string, model: BaseModel, options: LocalDataOptions = {}): Promise<LocalData> {
  const { loadData } = await import('../data/load.js');
  const data: DataSet = await loadData(file, options.label === undefined ? {} : { label: options.label });
  if (model.mlp !== undefined) {
    if (data.kind !== 'classification') throw dataError(file, 1, 'the mlp model trains on a CSV of numeric features and a label; this file holds texts');
    const { inputSize, numLabels } = model.mlp;
    if (data.featureNames.length !== inputSize) {
      throw dataError(file, data.lines[0] ?? 1, `has ${data.featureNames.length} feature columns, the model (${model.dir}) takes ${inputSize}`);
    }
    const bad = data.labels.findIndex((l) => l >= numLabels);
    if (bad >= 0) throw dataError(file, data.lines[bad]!, `label ${data.labels[bad]} is out of range: the model has ${numLabels} classes (0..${numLabels - 1})`);
    const { tableSource } = await import('../data/batches.js');
    return { file, examples: data.labels.length, source: tableSource(data) };
  }
  const config = model.llama!;
  if (data.kind === 'classification') throw dataError(file, 1, 'the llama model trains on texts (JSONL with a "text" field, or pre-tokenised "input_ids"); this file holds a table');
  const { sequenceEncoder } = await import('../data/sequences.js');
  const encoder = await sequenceEncoder(data, model.dir, config);
  const seqLen = options.seqLen ?? Math.min(128, config.maxPositionEmbeddings - 1);
  const sequences = encoder.encode(data);
  const { tokenSource } = await import('../data/batches.js');
  return { file, examples: sequences.length, source: tokenSource(sequences, seqLen, encoder.padId) };
}
