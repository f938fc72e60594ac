import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { loadTokenizer } from '../../client/tokenizer.js';
import { BYTE_BOS_ID, BYTE_EOS_ID, BYTE_PAD_ID, BYTE_SPECIAL_TOKENS, ByteTokenizer, byteTokenizerJson, bytesToUnicode } from '../../client/tokenizer-bytes.js';
import { HfTokenizer } from '../../client/tokenizer-hf.js';
import { isFedloraError } from '../../shared/errors.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedlora-tokenizer-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Well-formed strings of any code points (lone surrogates have no UTF-8 encoding). */
const anyText = fc.string({ unit: 'binary', maxLength: 60 }).filter((s) => {
  try {
    encodeURIComponent(s); // throws on a lone surrogate
    return true;
  } catch {
    return false;
  }
});

describe('byte tokenizer', () => {
  const t = new ByteTokenizer();

  it('encodes to the UTF-8 bytes and decodes back any text', () => {
    expect(t.encode('aé€😀')).toEqual([0x61, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80]);
    fc.assert(fc.property(anyText, (s) => t.decode(t.encode(s)) === s));
  });

  it('has 259 ids with BOS/EOS/PAD after the bytes, skipped on decode', () => {
    expect([t.vocabSize, t.bosId, t.eosId, t.padId]).toEqual([259, 256, 257, 258]);
    expect(t.decode([BYTE_BOS_ID, 0x68, 0x69, BYTE_EOS_ID, BYTE_PAD_ID])).toBe('hi');
  });

  it('is the same tokenizer as its tokenizer.json read by @huggingface/tokenizers', async () => {
    const { tokenizer, config } = byteTokenizerJson();
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
    const hf = await loadTokenizer(dir);
    expect(hf.kind).toBe('tokenizer.json');
    expect([hf.vocabSize, hf.bosId, hf.eosId, hf.padId]).toEqual([259, BYTE_BOS_ID, BYTE_EOS_ID, BYTE_PAD_ID]);
    fc.assert(fc.property(anyText, (s) => {
      const ids = hf.encode(s);
      return JSON.stringify(ids) === JSON.stringify(t.encode(s)) && hf.decode(ids) === s;
    }));
    // tokenizer.json matches the special tokens' text; the byte tokenizer does not (documented).
    expect(hf.encode(`${BYTE_SPECIAL_TOKENS.bos}a`)).toEqual([BYTE_BOS_ID, 0x61]);
  });
});

describe('tokenizer.json of the GPT-2 / SmolLM kind (byte-level BPE with the regex pre-tokenizer)', () => {
  it('splits words with their leading space, merges them, and decodes back exactly', () => {
    const symbols = bytesToUnicode();
    const vocab: Record<string, number> = {};
    symbols.forEach((sym, b) => (vocab[sym] = b));
    const G = symbols[0x20]!; // 'Ġ', the byte-level symbol of a space
    const merged = ['he', 'll', 'hell', 'hello', `${G}w`, `${G}wo`, `${G}wor`, `${G}worl`, `${G}world`];
    merged.forEach((t, i) => (vocab[t] = 256 + i));
    const merges = ['h e', 'l l', 'he ll', 'hell o', `${G} w`, `${G}w o`, `${G}wo r`, `${G}wor l`, `${G}worl d`];
    const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
    const t = new HfTokenizer({
      version: '1.0', added_tokens: [{ id: 265, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
      normalizer: null, pre_tokenizer: byteLevel, post_processor: null, decoder: byteLevel,
      model: { type: 'BPE', vocab: { ...vocab, '<|endoftext|>': 265 }, merges },
    }, { bos_token: '<|endoftext|>', eos_token: '<|endoftext|>' });
    // "hello" + "," + " world" + "!": the regex keeps the space with the following word.
    expect(t.encode('hello, world!')).toEqual([259, 0x2c, 264, 0x21]);
    // Unmerged text falls back to bytes: "héllo" has no merge across the two-byte é.
    expect(t.encode('héllo')).toEqual([0x68, 0xc3, 0xa9, 257, 0x6f]);
    expect(t.decode([265, 259, 0x2c, 264, 0x21, 265])).toBe('hello, world!');
    expect([t.bosId, t.eosId, t.vocabSize]).toEqual([265, 265, 266]);
  });
});

describe('tokenizer.json (a tiny BPE written here)', () => {
  const vocab = { '<unk>': 0, '<s>': 1, '</s>': 2, a: 3, b: 4, c: 5, ab: 6, abc: 7, h: 8, e: 9, l: 10, o: 11, he: 12, ll: 13, hell: 14, hello: 15 };
  const tinyBpe = {
    version: '1.0',
    added_tokens: [
      { id: 0, content: '<unk>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
      { id: 1, content: '<s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
      { id: 2, content: '</s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    ],
    normalizer: { type: 'Lowercase' },
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: null,
    decoder: null,
    model: { type: 'BPE', unk_token: '<unk>', vocab, merges: ['a b', 'ab c', 'h e', 'l l', 'he ll', 'hell o'] },
  };

  it('applies the merges in order, lowercases, maps unknown characters to <unk>, and decodes', async () => {
    const t = new HfTokenizer(tinyBpe, { bos_token: '<s>', eos_token: { content: '</s>' } });
    // "hello": h e l l o -> he l l o -> he ll o -> hell o -> hello; "abc" -> ab c -> abc; "ba" has no merge.
    expect(t.encode('Hello abc ba')).toEqual([15, 7, 4, 3]);
    expect(t.encode('abz')).toEqual([6, 0]);
    expect(t.bosId).toBe(1);
    expect(t.eosId).toBe(2);
    expect(t.padId).toBeUndefined();
    expect(t.vocabSize).toBe(16);
    expect(t.decode([1, 15, 7, 2])).toBe('hello abc');
  });

  it('refuses a folder without tokenizer.json, bad JSON, or a model the library cannot build', async () => {
    const empty = await mkdtemp(join(dir, 'empty-'));
    await expect(loadTokenizer(empty)).rejects.toSatisfy((e) => isFedloraError(e, 'FL_ERR_MODEL_CONFIG')
      && /tokenizer\.json: missing; text data needs the tokenizer of the checkpoint.*huggingface-cli download.*"input_ids"/.test((e as Error).message));
    await writeFile(join(empty, 'tokenizer.json'), '{"model": ');
    await expect(loadTokenizer(empty)).rejects.toSatisfy((e) => isFedloraError(e, 'FL_ERR_MODEL_CONFIG') && /not valid JSON/.test((e as Error).message));
    expect(() => new HfTokenizer({ ...tinyBpe, model: { type: 'NoSuchModel' } }, {})).toThrow(/FL_ERR_MODEL_CONFIG/);
  });
});

describe('the tokenizer modules', () => {
  it('form no import cycle: the interface has its own file, the implementations import only it', async () => {
    const { readFile } = await import('node:fs/promises');
    const imports = async (file: string): Promise<string[]> =>
      [...(await readFile(join('client', file), 'utf8')).matchAll(/(?:from|import\()\s*'\.\/(tokenizer[\w-]*)\.js'/g)].map((m) => m[1]!);
    expect(await imports('tokenizer-hf.ts')).toEqual(['tokenizer-types']);
    expect(await imports('tokenizer-bytes.ts')).toEqual(['tokenizer-types']);
    expect(await imports('tokenizer-types.ts')).toEqual([]);
    expect(await imports('tokenizer.ts')).toEqual(expect.arrayContaining(['tokenizer-types', 'tokenizer-hf']));
  });
});
