/**
 * Language data to token sequences against a model folder (client/data/sequences.ts): the
 * folder's tokenizer.json is what encodes texts; pre-tokenised rows need no tokenizer and are
 * checked against the model's vocabulary with file:line errors.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseJsonl } from '../../../client/data/jsonl.js';
import { sequenceEncoder } from '../../../client/data/sequences.js';
import type { LanguageData } from '../../../client/data/table.js';
import { isFedloraError } from '../../../shared/errors.js';

/** A word-level BPE whose ids are nothing like bytes: if these ids come out, tokenizer.json was used. */
const wordTokenizer = {
  version: '1.0',
  added_tokens: [
    { id: 0, content: '<s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    { id: 1, content: '</s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
  ],
  normalizer: null, pre_tokenizer: { type: 'Whitespace' }, post_processor: null, decoder: null,
  model: { type: 'BPE', vocab: { '<s>': 0, '</s>': 1, h: 2, i: 3, hi: 4, y: 5, o: 6, u: 7, yo: 8, you: 9 }, merges: ['h i', 'y o', 'yo u'] },
};

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'fedlora-sequences-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function language(content: string, file: string): LanguageData {
  const d = parseJsonl(content, file);
  if (d.kind === 'classification') throw new Error('expected language data');
  return d;
}

async function folder(name: string, withTokenizer: boolean): Promise<string> {
  const dir = join(root, name);
  const { mkdir } = await import('node:fs/promises');
  await mkdir(dir, { recursive: true });
  if (withTokenizer) {
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(wordTokenizer));
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>' }));
  }
  return dir;
}

describe('sequences for a causal language model', () => {
  it("encodes texts with the folder's tokenizer.json: BOS + its ids + EOS", async () => {
    const dir = await folder('with-tokenizer', true);
    const data = language('{"text":"hi you"}\n{"text":"yo hi hi"}\n', 'c.jsonl');
    const enc = await sequenceEncoder(data, dir, { vocabSize: 10 });
    expect(enc.tokenizer?.kind).toBe('tokenizer.json');
    expect(enc.encode(data).map((s) => [...s])).toEqual([[0, 4, 9, 1], [0, 8, 4, 4, 1]]);
    expect(enc.padId).toBe(1); // no PAD: EOS
    // A tokenizer that does not belong to the model: ids beyond its vocabulary, with the line named.
    const small = await sequenceEncoder(data, dir, { vocabSize: 9 });
    expect(() => small.encode(data)).toThrow(/c\.jsonl:1 field 'text': token id 9 is not below the model's vocab_size 9 \(the tokenizer does not belong to this model\)/);
  });

  it('refuses texts for a folder without tokenizer.json, saying how to proceed', async () => {
    const dir = await folder('no-tokenizer', false);
    const data = language('{"text":"hi"}\n', 'c.jsonl');
    await expect(sequenceEncoder(data, dir, { vocabSize: 10 })).rejects.toSatisfy((e) => {
      if (!isFedloraError(e, 'FL_ERR_MODEL_CONFIG')) throw e;
      expect(e.message).toMatch(/tokenizer\.json: missing; text data needs the tokenizer of the checkpoint: copy its tokenizer\.json/);
      expect(e.message).toMatch(/or give the data pre-tokenised as JSONL rows \{"input_ids": \[\.\.\.\]\}/);
      return true;
    });
  });

  it('uses pre-tokenised rows as they are, without a tokenizer, and checks them against the vocabulary', async () => {
    const dir = await folder('ids-only', false);
    const data = language('{"input_ids":[5,6,7]}\n{"input_ids":[9,0]}\n', 't.jsonl');
    const enc = await sequenceEncoder(data, dir, { vocabSize: 10, eosTokenId: 2 });
    expect(enc.tokenizer).toBeUndefined();
    expect(enc.encode(data).map((s) => [...s])).toEqual([[5, 6, 7], [9, 0]]);
    expect(enc.padId).toBe(2);
    const tooBig = language('{"input_ids":[5,6]}\n{"input_ids":[1,10,3]}\n', 't.jsonl');
    expect(() => enc.encode(tooBig)).toThrow("FL_ERR_DATA: t.jsonl:2 field 'input_ids[1]': token id 10 is not below the model's vocab_size 10");
    const short = language('{"input_ids":[5,6]}\n{"input_ids":[4]}\n', 't.jsonl');
    expect(() => enc.encode(short)).toThrow(/t\.jsonl:2 field 'input_ids': has 1 token; next-token training needs at least 2/);
  });
});
