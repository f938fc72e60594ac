import { describe, expect, it } from 'vitest';
import { parseJsonl } from '../../../client/data/jsonl.js';

describe('JSONL loader', () => {
  it('reads texts for language modelling', () => {
    const d = parseJsonl('{"text":"hello"}\n{"text":"a \\"quote\\""}\n', 'c.jsonl');
    expect(d).toMatchObject({ kind: 'text', texts: ['hello', 'a "quote"'] });
    expect(d.kind === 'text' && d.labels).toBe(undefined);
  });

  it('reads labelled texts', () => {
    const d = parseJsonl('{"text":"x","label":1}\n{"text":"y","label":0}\n', 'c.jsonl');
    expect(d.kind === 'text' && [...d.labels!]).toEqual([1, 0]);
  });

  it('reads feature columns and feature arrays for classification', () => {
    const cols = parseJsonl('{"x0":1,"x1":2,"label":3}\n{"x1":5,"x0":4,"label":0}\n', 'f.jsonl');
    if (cols.kind !== 'classification') throw new Error('expected a table');
    expect(cols.featureNames).toEqual(['x0', 'x1']);
    expect([...cols.features]).toEqual([1, 2, 4, 5]);
    const arr = parseJsonl('{"features":[1,2],"y":1}\n', 'f.jsonl', { label: 'y' });
    expect(arr.kind === 'classification' && [...arr.features]).toEqual([1, 2]);
  });

  it('names the file, line and field of every problem', () => {
    expect(() => parseJsonl('{"text":"a"}\n{"txt":"b"}\n', 'c.jsonl')).toThrow("FL_ERR_DATA: c.jsonl:2 field 'text': missing");
    expect(() => parseJsonl('{"text":"a"}\nnot json\n', 'c.jsonl')).toThrow(/c\.jsonl:2: not valid JSON/);
    expect(() => parseJsonl('{"text":"a"}\n\n{"text":"b"}\n', 'c.jsonl')).toThrow(/c\.jsonl:2: empty line/);
    expect(() => parseJsonl('[1,2]\n', 'c.jsonl')).toThrow(/c\.jsonl:1: is not a JSON object/);
    expect(() => parseJsonl('{"text":"a","label":1}\n{"text":"b","label":"x"}\n', 'c.jsonl')).toThrow(/c\.jsonl:2 field 'label': "x" is not a non-negative integer/);
    expect(() => parseJsonl('{"text":"a"}\n{"text":"b","label":1}\n', 'c.jsonl')).toThrow(/c\.jsonl:2 field 'label': has a label but line 1 does not/);
    expect(() => parseJsonl('{"x0":1,"label":0}\n{"x0":"2","label":0}\n', 'f.jsonl')).toThrow(/f\.jsonl:2 field 'x0': "2" is not a finite number/);
    expect(() => parseJsonl('{"x0":1,"label":0}\n{"x0":1,"x9":2,"label":0}\n', 'f.jsonl')).toThrow(/f\.jsonl:2 field 'x9': is not a field of line 1/);
    expect(() => parseJsonl('{"features":[1,2],"label":0}\n{"features":[1],"label":0}\n', 'f.jsonl')).toThrow(/f\.jsonl:2 field 'features': has 1 values, line 1 has 2/);
    expect(() => parseJsonl('', 'e.jsonl')).toThrow(/e\.jsonl:1: the file has no records/);
  });

  it('reads pre-tokenised rows (input_ids) as they are, and names the line and element of a bad id', () => {
    const d = parseJsonl('{"input_ids":[1,520,33,2]}\n{"input_ids":[7,0]}\n', 't.jsonl');
    if (d.kind !== 'tokens') throw new Error('expected pre-tokenised rows');
    expect(d.sequences.map((s) => [...s])).toEqual([[1, 520, 33, 2], [7, 0]]);
    expect([...d.lines]).toEqual([1, 2]);
    expect(() => parseJsonl('{"input_ids":[1,2]}\n{"input_ids":[3,-1]}\n', 't.jsonl')).toThrow("FL_ERR_DATA: t.jsonl:2 field 'input_ids[1]': -1 is not a token id (an integer >= 0)");
    expect(() => parseJsonl('{"input_ids":[1,2.5]}\n', 't.jsonl')).toThrow(/t\.jsonl:1 field 'input_ids\[1\]': 2\.5 is not a token id/);
    expect(() => parseJsonl('{"input_ids":[1,"2"]}\n', 't.jsonl')).toThrow(/t\.jsonl:1 field 'input_ids\[1\]': "2" is not a token id/);
    expect(() => parseJsonl('{"input_ids":[]}\n', 't.jsonl')).toThrow(/t\.jsonl:1 field 'input_ids': must be a non-empty array of token ids/);
    expect(() => parseJsonl('{"input_ids":"1 2"}\n', 't.jsonl')).toThrow(/t\.jsonl:1 field 'input_ids': must be a non-empty array/);
    expect(() => parseJsonl('{"input_ids":[1,2]}\n{"text":"b"}\n', 't.jsonl')).toThrow(/t\.jsonl:2 field 'input_ids': missing \(line 1 is pre-tokenised/);
    expect(() => parseJsonl('{"text":"a"}\n{"input_ids":[1,2]}\n', 't.jsonl')).toThrow(/t\.jsonl:2 field 'input_ids': line 1 has 'text'/);
    expect(() => parseJsonl('{"text":"a","input_ids":[1,2]}\n', 't.jsonl')).toThrow(/t\.jsonl:1: has both 'text' and 'input_ids'/);
    expect(() => parseJsonl('{"input_ids":[1,2],"label":3}\n', 't.jsonl')).toThrow(/t\.jsonl:1 field 'label': pre-tokenised rows are for language modelling/);
  });
});
