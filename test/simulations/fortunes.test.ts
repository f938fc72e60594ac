import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isFedloraError } from '../../shared/errors.js';
import { loadFortunes, parseFortunes } from '../../simulations/fortunes.js';
import { partitionRows } from '../../simulations/partition.js';

describe('fortunes data', () => {
  it('splits a fortune file on lines holding only %, keeping inner newlines and tabs', () => {
    expect(parseFortunes('first\nline two\n%\n\tsecond -- someone\n%\nthird\n%\n')).toEqual(['first\nline two', '\tsecond -- someone', 'third']);
    expect(parseFortunes('only one\n')).toEqual(['only one']);
  });

  it('keeps whole quotes under the byte bound, splits each category into disjoint test and training parts, the same for a seed', async () => {
    const o = { categories: ['food', 'love', 'riddles'], perCategory: 40, maxBytes: 100, testFraction: 0.25, seed: 3 };
    const a = await loadFortunes(o);
    const b = await loadFortunes(o);
    expect(a).toEqual(b);
    for (const part of [a.train, a.test]) {
      expect(part.texts.length).toBe(part.labels.length);
      for (const t of part.texts) expect(Buffer.byteLength(t, 'utf8')).toBeLessThanOrEqual(100);
    }
    for (let c = 0; c < 3; c++) {
      const test = a.test.texts.filter((_, i) => a.test.labels[i] === c);
      const train = a.train.texts.filter((_, i) => a.train.labels[i] === c);
      expect(test.length).toBe(10);
      expect(train.length).toBe(30);
      expect(train.some((t) => test.includes(t))).toBe(false);
    }
    const other = await loadFortunes({ ...o, seed: 4 });
    expect(other.test.texts).not.toEqual(a.test.texts);
  });

  it('the category partitioner gives client k exactly the training quotes of category k', async () => {
    const data = await loadFortunes({ categories: ['food', 'love', 'riddles', 'sports'], perCategory: 30, maxBytes: 126, testFraction: 0.2, seed: 1 });
    const parts = partitionRows(data.train.labels, 4, { kind: 'category' }, 1, 2);
    for (let k = 0; k < 4; k++) {
      const want = Array.from(data.train.labels.keys()).filter((i) => data.train.labels[i] === k).sort((x, y) => x - y);
      expect([...parts[k]!].sort((x, y) => x - y)).toEqual(want);
    }
  });

  it('refuses an unknown category naming the known ones, and a category with too few short quotes', async () => {
    const e = await loadFortunes({ categories: ['food', 'nosuch'], perCategory: 10, maxBytes: 126, testFraction: 0.2, seed: 1 }).catch((x: unknown) => x);
    expect(isFedloraError(e, 'FL_ERR_INVALID_ARGUMENT')).toBe(true);
    expect((e as Error).message).toMatch(/no fortune category 'nosuch'; known: art, computers/);
    const dir = mkdtempSync(join(tmpdir(), 'fedlora-fortunes-'));
    writeFileSync(join(dir, 'tiny.txt'), 'a\n%\nb\n%\nc\n%\n');
    const f = await loadFortunes({ categories: ['tiny'], perCategory: 10, maxBytes: 126, testFraction: 0.2, seed: 1, dir }).catch((x: unknown) => x);
    expect(isFedloraError(f, 'FL_ERR_DATA')).toBe(true);
  });
});
