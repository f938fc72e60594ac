import { describe, expect, it } from 'vitest';
import { firstDuplicateKey, keysInTextOrder } from '../../shared/json-keys.js';

describe('keysInTextOrder', () => {
  it('keeps text order where a JS object would move integer-like keys first', () => {
    const text = '{"b": 1, "10": 2, "a.0": {"x": [1, {"y": "}"}]}, "0": null}';
    expect(Object.keys(JSON.parse(text) as object)).toEqual(['0', '10', 'b', 'a.0']);
    expect(keysInTextOrder(text)).toEqual(['b', '10', 'a.0', '0']);
  });

  it('follows a path of keys into nested objects, skipping strings with braces and escapes', () => {
    const text = ' { "s": "{\\"q\\": 1}", "rank_pattern" : { "x.1" : 2 , "0":3, "\\u0061": 4 }, "t": [] } ';
    expect(keysInTextOrder(text, ['rank_pattern'])).toEqual(['x.1', '0', 'a']);
    expect(keysInTextOrder(text, ['t'])).toBeUndefined();
    expect(keysInTextOrder(text, ['missing'])).toBeUndefined();
    expect(keysInTextOrder('[1]')).toBeUndefined();
    expect(keysInTextOrder('{}')).toEqual([]);
  });

  it('reports duplicates, which JSON.parse drops silently', () => {
    expect(firstDuplicateKey('{"a": 1, "b": {"a": 2}, "\\u0061": 3}')).toBe('a');
    expect(firstDuplicateKey('{"a": {"b": 1, "b": 2}}')).toBeUndefined();
    expect(firstDuplicateKey('{"a": {"b": 1, "b": 2}}', ['a'])).toBe('b');
    // With a duplicate on the path, the last one is followed, as JSON.parse keeps it.
    expect(keysInTextOrder('{"p": {"x": 1}, "p": {"y": 2}}', ['p'])).toEqual(['y']);
  });
});
