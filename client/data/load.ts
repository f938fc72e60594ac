/** Loads a data file by its extension: .csv / .csv.gz or .jsonl / .jsonl.gz / .json. */
import { FedloraError } from '../../shared/errors.js';
import { loadCsv } from './csv.js';
import { loadJsonl } from './jsonl.js';
import type { DataSet } from './table.js';

export interface LoadDataOptions {
  /** The label column or field (see CsvOptions.label / JsonlOptions.label). */
  readonly label?: string;
  /** CSV only: whether the first line is a header (see CsvOptions.header). @default 'auto' */
  readonly header?: boolean | 'auto';
}

export async function loadData(path: string, options: LoadDataOptions = {}): Promise<DataSet> {
  const plain = path.replace(/\.gz$/, '');
  if (plain.endsWith('.csv')) return loadCsv(path, options);
  if (plain.endsWith('.jsonl') || plain.endsWith('.json')) return loadJsonl(path, options.label === undefined ? {} : { label: options.label });
  throw new FedloraError('FL_ERR_DATA', `${path}: unknown data format; use .csv or .jsonl (optionally .gz)`, { file: path });
}
