import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { trainTestSplit } from '../../../client/data/split.js';
import { indicesWithLabels, subset } from '../../../client/data/table.js';
import { parseCsv } from '../../../client/data/csv.js';

describe('trainTestSplit', () => {
  it('partitions 0..n-1 into sorted disjoint parts of the right sizes, reproducibly', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 300 }), fc.double({ min: 0, max: 0.99, noNaN: true }), fc.integer(), (n, f, seed) => {
      const s = trainTestSplit(n, f, seed);
      expect(s.test.length).toBe(Math.round(n * f));
      const all = [...s.train, ...s.test].sort((a, b) => a - b);
      expect(all).toEqual(Array.from({ length: n }, (_, i) => i));
      expect([...s.train]).toEqual([...s.train].sort((a, b) => a - b));
      expect(trainTestSplit(n, f, seed)).toEqual(s);
    }), { numRuns: 50 });
  });

  it('depends on the seed', () => {
    expect(trainTestSplit(100, 0.3, 1).test).not.toEqual(trainTestSplit(100, 0.3, 2).test);
  });

  it('rejects a bad fraction', () => {
    expect(() => trainTestSplit(10, 1, 0)).toThrow(/FL_ERR_INVALID_ARGUMENT.*\[0, 1\), got 1/);
  });
});

describe('subsets', () => {
  it('keeps rows, labels and line numbers together', () => {
    const t = parseCsv('a,b,label\n1,2,0\n3,4,1\n5,6,2\n', 'f.csv');
    const idx = indicesWithLabels(t.labels, new Set([0, 2]));
    expect([...idx]).toEqual([0, 2]);
    const s = subset(t, idx);
    expect([...s.features]).toEqual([1, 2, 5, 6]);
    expect([...s.labels]).toEqual([0, 2]);
    expect([...s.lines]).toEqual([2, 4]);
  });
});
