/**
 * The byte-level tokenizer of fedlora's own small models: a token is one UTF-8 byte (ids 0..255),
 * plus three special tokens BOS = 256, EOS = 257, PAD = 258 (vocabulary 259). Any text encodes
 * without unknown tokens and decodes back exactly; sequences are ~1.1x the characters for English.
 *
 * {@link byteTokenizerJson} writes the same tokenizer as a Hugging Face `tokenizer.json` (a
 * byte-level BPE with the 256 byte symbols and no merges), so a model folder we pre-train loads in
 * transformers (`AutoTokenizer.from_pretrained`) and through {@link loadTokenizer} alike. One
 * difference: tokenizer.json implementations match the special tokens' text (`<|bos|>`, ...) in
 * the input and give their ids, while this class always encodes text as bytes.
 */
import type { TextTokenizer } from './tokenizer-types.js';

export const BYTE_VOCAB_SIZE = 259;
export const BYTE_BOS_ID = 256;
export const BYTE_EOS_ID = 257;
export const BYTE_PAD_ID = 258;
/** The text of the special tokens in tokenizer.json. */
export const BYTE_SPECIAL_TOKENS = { bos: '<|bos|>', eos: '<|eos|>', pad: '<|pad|>' } as const;

export class ByteTokenizer implements TextTokenizer {
  readonly kind = 'bytes' as const;
  readonly vocabSize = BYTE_VOCAB_SIZE;
  readonly bosId = BYTE_BOS_ID;
  readonly eosId = BYTE_EOS_ID;
  readonly padId = BYTE_PAD_ID;
  private readonly encoder = new TextEncoder();
  // Invalid UTF-8 (a sequence cut mid-character) decodes to U+FFFD rather than throwing.
  private readonly decoder = new TextDecoder('utf-8', { fatal: false });

  encode(text: string): number[] {
    return Array.from(this.encoder.encode(text));
  }

  decode(ids: readonly number[]): string {
    const bytes = Uint8Array.from(ids.filter((id) => id >= 0 && id < 256));
    return this.decoder.decode(bytes);
  }
}

/**
 * GPT-2's reversible map from bytes to printable unicode characters, which byte-level BPE
 * tokenizer.json files use as the symbols of their vocabulary (Radford et al., 2019, `encoder.py`
 * `bytes_to_unicode`): printable Latin-1 bytes map to themselves, the others to U+0100 onwards.
 */
export function bytesToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const symbols = new Array<string>(256);
  let next = 0;
  for (let b = 0; b < 256; b++) {
    symbols[b] = printable.includes(b) ? String.fromCodePoint(b) : String.fromCodePoint(256 + next++);
  }
  return symbols;
}

/**
 * The byte tokenizer as Hugging Face `tokenizer.json` and `tokenizer_config.json` objects: ids
 * 0..255 are the bytes (in byte order), 256..258 the special tokens.
 */
export function byteTokenizerJson(): { tokenizer: Record<string, unknown>; config: Record<string, unknown> } {
  const symbols = bytesToUnicode();
  const vocab: Record<string, number> = {};
  symbols.forEach((s, b) => (vocab[s] = b));
  const special = (id: number, content: string): Record<string, unknown> =>
    ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false };
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      special(BYTE_BOS_ID, BYTE_SPECIAL_TOKENS.bos),
      special(BYTE_EOS_ID, BYTE_SPECIAL_TOKENS.eos),
      special(BYTE_PAD_ID, BYTE_SPECIAL_TOKENS.pad),
    ],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: null,
    decoder: byteLevel,
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: [],
    },
  };
  const config = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: BYTE_SPECIAL_TOKENS.bos,
    eos_token: BYTE_SPECIAL_TOKENS.eos,
    pad_token: BYTE_SPECIAL_TOKENS.pad,
    model_max_length: 1_000_000,
    clean_up_tokenization_spaces: false,
  };
  return { tokenizer, config };
}
