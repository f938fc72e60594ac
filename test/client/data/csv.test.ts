import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { isFedloraError } from '../../../shared/errors.js';
import { loadCsv, parseCsv, splitCsvLine } from '../../../client/data/csv.js';
import { loadData } from '../../../client/data/load.js';

function dataErrorOf(f: () => unknown): { message: string; details: Record<string, unknown> } {
  try {
    f();
  } catch (e) {
    if (isFedloraError(e, 'FL_ERR_DATA')) return { message: e.message, details: { ...e.details } };
    throw e;
  }
  throw new Error('expected FL_ERR_DATA');
}

describe('CSV loader', () => {
  it('reads features and the label column by name, in any position', () => {
    const t = parseCsv('a,label,b\n1,0,2.5\n-3,2,4e-1\n', 'x.csv', { label: 'label' });
    expect(t.featureNames).toEqual(['a', 'b']);
    expect([...t.features]).toEqual([1, 2.5, -3, Math.fround(0.4)]);
    expect([...t.labels]).toEqual([0, 2]);
    expect([...t.lines]).toEqual([2, 3]);
  });

  it('defaults to a column named label, else the last column; headerless files name columns c0, c1, ...', () => {
    expect(parseCsv('x,y\n1,5\n', 'f.csv').featureNames).toEqual(['x']);
    const t = parseCsv('1,2,3\n4,5,6\n', 'f.csv', { header: false });
    expect(t.featureNames).toEqual(['c0', 'c1']);
    expect([...t.labels]).toEqual([3, 6]);
    expect(parseCsv('1,2,3\n', 'f.csv', { header: false, label: '0' }).featureNames).toEqual(['c1', 'c2']);
  });

  it('detects a header: a first line of numbers is data', () => {
    expect(parseCsv('1,2,3\n4,5,6\n', 'f.csv').labels.length).toBe(2);
    expect(parseCsv('x,2,3\n4,5,6\n', 'f.csv').featureNames).toEqual(['x', '2']);
    expect(parseCsv('1,2,3\n4,5,6\n', 'f.csv', { header: true }).featureNames).toEqual(['1', '2']);
  });

  it('handles quoted fields', () => {
    expect(splitCsvLine('"a,b","say ""hi""",3', 'f', 1)).toEqual(['a,b', 'say "hi"', '3']);
    expect(parseCsv('"sepal, length",label\n1.5,1\n', 'f.csv').featureNames).toEqual(['sepal, length']);
  });

  it('names the file, line and field of every bad value; never skips a row', () => {
    const bad = dataErrorOf(() => parseCsv('a,b,label\n1,2,0\n1,x,1\n', 'd.csv'));
    expect(bad.message).toBe("FL_ERR_DATA: d.csv:3 field 'b': 'x' is not a finite number");
    expect(bad.details).toEqual({ file: 'd.csv', line: 3, field: 'b' });
    expect(dataErrorOf(() => parseCsv('a,label\n1,0\n\n2,1\n', 'd.csv')).message).toMatch(/d\.csv:3: empty line/);
    expect(dataErrorOf(() => parseCsv('a,label\n1,0\n2\n', 'd.csv')).message).toMatch(/d\.csv:3: has 1 fields, the header has 2/);
    expect(dataErrorOf(() => parseCsv('a,label\n1,0.5\n', 'd.csv')).message).toMatch(/d\.csv:2 field 'label': label '0\.5' is not a non-negative integer/);
    expect(dataErrorOf(() => parseCsv('a,label\n1,-1\n', 'd.csv')).message).toMatch(/label '-1'/);
    expect(dataErrorOf(() => parseCsv('a,label\n,1\n', 'd.csv')).message).toMatch(/field 'a': '' is not a finite number/);
    expect(dataErrorOf(() => parseCsv('a,b\n1,2\n', 'd.csv', { label: 'y' })).message).toMatch(/no label column 'y'; columns are a, b/);
    expect(dataErrorOf(() => parseCsv('a,a\n1,2\n', 'd.csv')).message).toMatch(/d\.csv:1: column name 'a' appears twice/);
    expect(dataErrorOf(() => parseCsv('a,label\n', 'd.csv')).message).toMatch(/no data rows/);
    expect(dataErrorOf(() => parseCsv('', 'd.csv')).message).toMatch(/d\.csv:1: the file has no data rows/);
    expect(dataErrorOf(() => parseCsv('"a,label\n1,0\n', 'd.csv')).message).toMatch(/d\.csv:1: unterminated quoted field/);
  });

  it('reads gzipped files, and the digits copy in the repo (1,797 rows, 64 features, labels 0-9)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedlora-csv-'));
    const p = join(dir, 'small.csv.gz');
    await writeFile(p, gzipSync('f1,f2,label\n1,2,1\n3,4,0\n'));
    const t = await loadCsv(p);
    expect([...t.features]).toEqual([1, 2, 3, 4]);
    const digits = await loadData('simulations/data/digits.csv.gz');
    if (digits.kind !== 'classification') throw new Error('digits must load as a table');
    expect(digits.labels.length).toBe(1797);
    expect(digits.featureNames.length).toBe(64);
    expect(new Set(digits.labels)).toEqual(new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
    expect(Math.max(...digits.features)).toBe(16);
  });

  it('reports an unreadable file as FL_ERR_IO and an unknown extension as FL_ERR_DATA', async () => {
    await expect(loadCsv('/nonexistent/file.csv')).rejects.toThrow(/FL_ERR_IO: cannot read data file \/nonexistent\/file\.csv/);
    await expect(loadData('data.parquet')).rejects.toThrow(/FL_ERR_DATA: data\.parquet: unknown data format/);
  });
});
