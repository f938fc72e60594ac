/**
 * Token sequences of the language task as the sim moves them: texts encoded with the base
 * model's tokenizer (client/tokenizer.ts encodeSequence, as a client's JSONL is),
 * packed into one Int32Array plus offsets so a worker thread receives them as transferable buffers.
 */
import { encodeSequence, type TextTokenizer } from '../client/tokenizer.js';

/** Sequence i is ids[offsets[i] .. offsets[i + 1]). */
export interface PackedSequences {
  readonly ids: Int32Array;
  /** length = sequences + 1 */
  readonly offsets: Int32Array;
}

/** BOS + tokens + EOS of each text (BOS/EOS when the tokenizer has them). */
export function encodeTexts(texts: readonly string[], tokenizer: TextTokenizer): Int32Array[] {
  return texts.map((t) => encodeSequence(tokenizer, t));
}

export function packSequences(sequences: readonly Int32Array[]): PackedSequences {
  const offsets = new Int32Array(sequences.length + 1);
  sequences.forEach((s, i) => (offsets[i + 1] = offsets[i]! + s.length));
  const ids = new Int32Array(offsets[sequences.length]!);
  sequences.forEach((s, i) => ids.set(s, offsets[i]!));
  return { ids, offsets };
}

/** Views into the packed buffer (no copy). */
export function unpackSequences(packed: PackedSequences): Int32Array[] {
  return Array.from({ length: packed.offsets.length - 1 }, (_, i) => packed.ids.subarray(packed.offsets[i]!, packed.offsets[i + 1]!));
}

/** The packed sequences at `rows`. */
export function selectSequences(sequences: readonly Int32Array[], rows: ArrayLike<number>): PackedSequences {
  return packSequences(Array.from(rows, (r) => sequences[r]!));
}
