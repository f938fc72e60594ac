/**
 * JSON Lines: one JSON object per line.
 *  - `{"text": "..."}` for language modelling; `{"text": "...", "label": 3}` for text classification.
 *  - `{"input_ids": [1, 520, 33, 2]}` for language modelling on pre-tokenised data: the ids are used
 *    as they are (no tokenizer, no BOS/EOS added); checked against the model's vocabulary later
 *    (client/data/sequences.ts).
 *  - `{"features": [..numbers..], "label": 3}`, or numeric fields as feature columns
 *    (`{"x0": 1.5, "x1": 2, "label": 3}`; every line must have the same fields) for classification.
 * Which kind a file is comes from its first record (a `text` field means text, an
 * `input_ids` field pre-tokenised rows), and every record must be of that kind. Every problem is an
 * FL_ERR_DATA naming the file, the line and the field; no line is ever skipped silently.
 */
import { FedloraError } from '../../shared/errors.js';
import { numberedLines, readDataText } from './read-text.js';
import type { ClassificationTable, DataSet, TextCorpus, TokenCorpus } from './table.js';

export interface JsonlOptions {
  /** The label field. @default 'label' */
  readonly label?: string;
  /** The text field. @default 'text' */
  readonly text?: string;
  /** The field of pre-tokenised rows. @default 'input_ids' */
  readonly inputIds?: string;
}

function dataError(file: string, line: number, problem: string, field?: string): FedloraError {
  return new FedloraError('FL_ERR_DATA', `${file}:${line}${field === undefined ? '' : ` field '${field}'`}: ${problem}`, { file, line, ...(field === undefined ? {} : { field }) });
}

export async function loadJsonl(path: string, options: JsonlOptions = {}): Promise<DataSet> {
  return parseJsonl(await readDataText(path), path, options);
}

export function parseJsonl(content: string, file: string, options: JsonlOptions = {}): DataSet {
  const labelField = options.label ?? 'label';
  const textField = options.text ?? 'text';
  const records = numberedLines(content).map(({ line, text }) => {
    if (text.trim() === '') throw dataError(file, line, 'empty line');
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw dataError(file, line, `not valid JSON: ${(e as Error).message}`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw dataError(file, line, 'is not a JSON object');
    return { line, record: value as Record<string, unknown> };
  });
  if (records.length === 0) throw dataError(file, 1, 'the file has no records');
  const first = records[0]!.record;
  const idsField = options.inputIds ?? 'input_ids';
  if (textField in first && idsField in first) throw dataError(file, records[0]!.line, `has both '${textField}' and '${idsField}': give one of them`);
  if (idsField in first) return tokenCorpus(records, file, idsField, textField, labelField);
  if (textField in first) {
    const stray = records.find((r) => idsField in r.record);
    if (stray !== undefined) throw dataError(file, stray.line, `line ${records[0]!.line} has '${textField}': every record must have text, or every record '${idsField}'`, idsField);
    return textCorpus(records, file, textField, labelField, labelField in first);
  }
  return table(records, file, labelField);
}

/** Pre-tokenised rows: a non-empty array of integer ids in [0, 2^31) on every line, nothing else to read. */
function tokenCorpus(records: Rec[], file: string, idsField: string, textField: string, labelField: string): TokenCorpus {
  const sequences = records.map((rec) => {
    const ids = rec.record[idsField];
    if (ids === undefined) {
      const why = textField in rec.record ? `missing (line ${records[0]!.line} is pre-tokenised: every record must be, none may have '${textField}')` : 'missing';
      throw dataError(file, rec.line, why, idsField);
    }
    if (textField in rec.record) throw dataError(file, rec.line, `has both '${textField}' and '${idsField}': give one of them`);
    if (labelField in rec.record) throw dataError(file, rec.line, 'pre-tokenised rows are for language modelling; a label is not read, remove it', labelField);
    if (!Array.isArray(ids) || ids.length === 0) throw dataError(file, rec.line, 'must be a non-empty array of token ids', idsField);
    const out = new Int32Array(ids.length);
    ids.forEach((v, j) => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 2 ** 31 - 1) {
        throw dataError(file, rec.line, `${JSON.stringify(v)} is not a token id (an integer >= 0)`, `${idsField}[${j}]`);
      }
      out[j] = v;
    });
    return out;
  });
  return { kind: 'tokens', source: file, sequences, lines: Int32Array.from(records, (r) => r.line) };
}

type Rec = { line: number; record: Record<string, unknown> };

function labelOf(rec: Rec, file: string, labelField: string): number {
  const v = rec.record[labelField];
  if (v === undefined) throw dataError(file, rec.line, 'missing', labelField);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 2 ** 31 - 1) {
    throw dataError(file, rec.line, `${JSON.stringify(v)} is not a non-negative integer class id`, labelField);
  }
  return v;
}

function textCorpus(records: Rec[], file: string, textField: string, labelField: string, labelled: boolean): TextCorpus {
  const texts = records.map((rec) => {
    const t = rec.record[textField];
    if (typeof t !== 'string') throw dataError(file, rec.line, t === undefined ? 'missing' : `must be a string, got ${typeof t}`, textField);
    return t;
  });
  const lines = Int32Array.from(records, (r) => r.line);
  if (!labelled) {
    const stray = records.find((r) => labelField in r.record);
    if (stray !== undefined) throw dataError(file, stray.line, `has a label but line ${records[0]!.line} does not: label every record or none`, labelField);
    return { kind: 'text', source: file, texts, lines };
  }
  return { kind: 'text', source: file, texts, labels: Int32Array.from(records, (r) => labelOf(r, file, labelField)), lines };
}

function table(records: Rec[], file: string, labelField: string): ClassificationTable {
  const first = records[0]!;
  const featureArray = 'features' in first.record;
  const names = featureArray
    ? (Array.isArray(first.record.features) ? first.record.features.map((_, i) => `features[${i}]`) : [])
    : Object.keys(first.record).filter((k) => k !== labelField);
  if (names.length === 0) throw dataError(file, first.line, 'no feature fields (expected `features: [...]` or numeric fields besides the label)');
  const d = names.length;
  const features = new Float32Array(records.length * d);
  const labels = new Int32Array(records.length);
  records.forEach((rec, r) => {
    if (featureArray) {
      const arr = rec.record.features;
      if (!Array.isArray(arr)) throw dataError(file, rec.line, 'must be an array of numbers', 'features');
      if (arr.length !== d) throw dataError(file, rec.line, `has ${arr.length} values, line ${first.line} has ${d}`, 'features');
      arr.forEach((v, j) => {
        if (typeof v !== 'number' || !Number.isFinite(v)) throw dataError(file, rec.line, `${JSON.stringify(v)} is not a finite number`, `features[${j}]`);
        features[r * d + j] = v;
      });
    } else {
      const keys = Object.keys(rec.record).filter((k) => k !== labelField);
      const extra = keys.find((k) => !names.includes(k));
      if (extra !== undefined) throw dataError(file, rec.line, `is not a field of line ${first.line}`, extra);
      names.forEach((name, j) => {
        const v = rec.record[name];
        if (v === undefined) throw dataError(file, rec.line, 'missing', name);
        if (typeof v !== 'number' || !Number.isFinite(v)) throw dataError(file, rec.line, `${JSON.stringify(v)} is not a finite number`, name);
        features[r * d + j] = v;
      });
    }
    labels[r] = labelOf(rec, file, labelField);
  });
  return { kind: 'classification', source: file, featureNames: names, features, labels, lines: Int32Array.from(records, (r) => r.line) };
}
