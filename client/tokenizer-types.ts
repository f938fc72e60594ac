/**
 * The tokenizer interface, alone in its file so that the implementations (tokenizer-bytes.ts,
 * tokenizer-hf.ts) and the loader (tokenizer.ts) all import it from here and none imports another
 * (no import cycle between tokenizer.ts and tokenizer-hf.ts).
 */
export interface TextTokenizer {
  readonly kind: 'bytes' | 'tokenizer.json';
  /** One more than the largest id the tokenizer can produce (special tokens included). */
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  readonly padId: number | undefined;
  /** Token ids of a text, without any special token added (callers add BOS/EOS themselves). */
  encode(text: string): number[];
  /** The text of token ids; special tokens are skipped. */
  decode(ids: readonly number[]): string;
}
