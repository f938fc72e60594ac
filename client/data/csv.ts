/**
 * CSV for classification: a header row of column names (or none, see `header`), numeric feature
 * columns and one integer label column. Gzipped files are read transparently. Every problem is
 * an FL_ERR_DATA naming the file, the line and the field; no row is ever skipped silently.
 *
 * The parser is a few lines rather than a library: fields are numbers, quotes are only allowed
 * around a whole field (RFC 4180, "" inside for a quote), and a field may not span lines.
 */
import { FedloraError } from '../../shared/errors.js';
import { numberedLines, readDataText } from './read-text.js';
import type { ClassificationTable } from './table.js';

export interface CsvOptions {
  /**
   * The label column: its header name, or its 0-based index, or `last`. @default 'label' when
   * the header has such a column, else `last`
   */
  readonly label?: string;
  /**
   * Whether the first line names the columns; without one, columns are named c0, c1, ...
   * `auto`: a first line whose fields are all numbers is data, anything else is a header.
   * @default 'auto'
   */
  readonly header?: boolean | 'auto';
}

function dataError(file: string, line: number, problem: string, field?: string): FedloraError {
  return new FedloraError('FL_ERR_DATA', `${file}:${line}${field === undefined ? '' : ` field '${field}'`}: ${problem}`, { file, line, ...(field === undefined ? {} : { field }) });
}

/** Splits one CSV line into fields. */
export function splitCsvLine(text: string, file: string, line: number): string[] {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    if (text[i] === '"') {
      let value = '';
      i++;
      for (;;) {
        const q = text.indexOf('"', i);
        if (q < 0) throw dataError(file, line, `unterminated quoted field (column ${fields.length + 1})`);
        value += text.slice(i, q);
        if (text[q + 1] === '"') { value += '"'; i = q + 2; continue; }
        i = q + 1;
        break;
      }
      fields.push(value);
      if (i === text.length) return fields;
      if (text[i] !== ',') throw dataError(file, line, `text after a closing quote (column ${fields.length})`);
      i++;
    } else {
      const c = text.indexOf(',', i);
      if (c < 0) { fields.push(text.slice(i)); return fields; }
      fields.push(text.slice(i, c));
      i = c + 1;
    }
  }
}

/** Reads a CSV file into a classification table. */
export async function loadCsv(path: string, options: CsvOptions = {}): Promise<ClassificationTable> {
  return parseCsv(await readDataText(path), path, options);
}

/** Parses CSV text (see loadCsv); `file` names the source in messages. */
export function parseCsv(text: string, file: string, options: CsvOptions = {}): ClassificationTable {
  const lines = numberedLines(text);
  if (lines.length === 0) throw dataError(file, 1, 'the file has no data rows');
  const first = lines[0]!;
  const firstFields = splitCsvLine(first.text, file, first.line);
  const header = options.header ?? 'auto';
  const hasHeader = header === 'auto' ? !firstFields.every((f) => f.trim() !== '' && Number.isFinite(Number(f))) : header;
  if (hasHeader && lines.length === 1) throw dataError(file, 1, 'the file has no data rows');
  const names = hasHeader ? firstFields.map((s) => s.trim()) : firstFields.map((_, i) => `c${i}`);
  if (hasHeader) {
    const seen = new Set<string>();
    names.forEach((name, i) => {
      if (name === '') throw dataError(file, 1, `column ${i + 1} of the header has no name`);
      if (seen.has(name)) throw dataError(file, 1, `column name '${name}' appears twice`);
      seen.add(name);
    });
  }
  const labelIndex = resolveLabel(names, options.label, file, hasHeader);
  const featureIdx = names.map((_, i) => i).filter((i) => i !== labelIndex);
  if (featureIdx.length === 0) throw dataError(file, 1, 'there is no feature column besides the label');
  const rows = hasHeader ? lines.slice(1) : lines;
  const d = featureIdx.length;
  const features = new Float32Array(rows.length * d);
  const labels = new Int32Array(rows.length);
  const lineNumbers = new Int32Array(rows.length);
  rows.forEach((row, r) => {
    if (row.text.trim() === '') throw dataError(file, row.line, 'empty line');
    const fields = splitCsvLine(row.text, file, row.line);
    if (fields.length !== names.length) throw dataError(file, row.line, `has ${fields.length} fields, the header has ${names.length}`);
    featureIdx.forEach((c, j) => {
      const raw = fields[c]!.trim();
      const v = raw === '' ? NaN : Number(raw);
      if (!Number.isFinite(v)) throw dataError(file, row.line, `'${raw}' is not a finite number`, names[c]);
      features[r * d + j] = v;
    });
    const rawLabel = fields[labelIndex]!.trim();
    const label = rawLabel === '' ? NaN : Number(rawLabel);
    if (!Number.isInteger(label) || label < 0 || label > 2 ** 31 - 1) {
      throw dataError(file, row.line, `label '${rawLabel}' is not a non-negative integer class id`, names[labelIndex]);
    }
    labels[r] = label;
    lineNumbers[r] = row.line;
  });
  return { kind: 'classification', source: file, featureNames: featureIdx.map((i) => names[i]!), features, labels, lines: lineNumbers };
}

function resolveLabel(names: readonly string[], label: string | undefined, file: string, hasHeader: boolean): number {
  if (label === undefined) return hasHeader && names.includes('label') ? names.indexOf('label') : names.length - 1;
  if (label === 'last') return names.length - 1;
  const byName = names.indexOf(label);
  if (byName >= 0) return byName;
  if (/^\d+$/.test(label) && Number(label) < names.length) return Number(label);
  throw new FedloraError('FL_ERR_DATA', `${file}: no label column '${label}'; columns are ${names.slice(0, 12).join(', ')}${names.length > 12 ? ', ...' : ''}`, { file, field: label });
}
