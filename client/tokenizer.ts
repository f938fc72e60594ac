/**
 * Text <-> token ids for causal language models. Two kinds:
 *  - `bytes` (tokenizer-bytes.ts): our own small models; ids 0..255 are the UTF-8 bytes, then
 *    BOS, EOS and PAD. No training, no unknown tokens, any text round-trips.
 *  - `tokenizer.json` (tokenizer-hf.ts): real checkpoints (SmolLM, TinyLlama, ...), read with the
 *    maintained `@huggingface/tokenizers` library rather than a hand-written BPE.
 * A model folder written by `fedlora pretrain llama` holds a tokenizer.json equivalent to the byte
 * tokenizer, so every model folder is loaded the same way: {@link loadTokenizer}.
 */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { FedloraError } from '../shared/errors.js';
import type { TextTokenizer } from './tokenizer-types.js';

export type { TextTokenizer } from './tokenizer-types.js';

/** A training sequence: BOS + the text's tokens + EOS (each where the tokenizer has it). */
export function encodeSequence(tokenizer: TextTokenizer, text: string): Int32Array {
  return Int32Array.from([...(tokenizer.bosId === undefined ? [] : [tokenizer.bosId]), ...tokenizer.encode(text), ...(tokenizer.eosId === undefined ? [] : [tokenizer.eosId])]);
}

/**
 * Loads the tokenizer of a model folder from its `tokenizer.json` (and `tokenizer_config.json`
 * when present, for the BOS/EOS/PAD tokens).
 * @throws FedloraError FL_ERR_MODEL_CONFIG when the folder has no tokenizer.json or it is malformed
 */
export async function loadTokenizer(dir: string): Promise<TextTokenizer> {
  const file = join(dir, 'tokenizer.json');
  try {
    await access(file);
  } catch (e) {
    throw new FedloraError('FL_ERR_MODEL_CONFIG',
      `${file}: missing; text data needs the tokenizer of the checkpoint: copy its tokenizer.json (and tokenizer_config.json) into ${dir} `
      + '(e.g. `huggingface-cli download <repo> tokenizer.json tokenizer_config.json --local-dir <model dir>`), '
      + 'or give the data pre-tokenised as JSONL rows {"input_ids": [...]} (no tokenizer needed)', { file }, { cause: e });
  }
  const { loadHfTokenizer } = await import('./tokenizer-hf.js');
  return loadHfTokenizer(dir);
}
