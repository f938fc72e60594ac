/**
 * Language data to the token sequences a causal language model trains on, checked against the
 * model: texts go through the model folder's tokenizer.json (BOS + tokens + EOS, as
 * `encodeSequence`); pre-tokenised rows (`{"input_ids": [...]}`) are used as they are and need no
 * tokenizer. Either way every id must be below the model's vocab_size and every sequence must hold
 * at least 2 tokens; a violation is an FL_ERR_DATA naming the file, the line and the field.
 */
import { FedloraError } from '../../shared/errors.js';
import type { TextTokenizer } from '../tokenizer-types.js';
import type { LanguageData } from './table.js';

/** What the encoder needs of the model (a LlamaConfig fits). */
export interface SequenceModel {
  readonly vocabSize: number;
  readonly padTokenId?: number;
  readonly eosTokenId?: number;
}

export interface SequenceEncoder {
  /**
   * The sequences of the rows, in order.
   * @throws FL_ERR_DATA `file:line field 'input_ids[j]'` for an id outside the vocabulary, or a
   *   row with fewer than 2 tokens
   */
  encode(data: LanguageData): Int32Array[];
  /** The id padded positions carry (masked out of the loss): the tokenizer's or config's PAD, else EOS, else 0. */
  readonly padId: number;
  /** The tokenizer, when the data is text. */
  readonly tokenizer?: TextTokenizer;
}

function dataError(file: string, line: number, problem: string, field?: string): FedloraError {
  return new FedloraError('FL_ERR_DATA', `${file}:${line}${field === undefined ? '' : ` field '${field}'`}: ${problem}`, { file, line, ...(field === undefined ? {} : { field }) });
}

function check(sequences: Int32Array[], data: LanguageData, vocabSize: number, what: string): Int32Array[] {
  sequences.forEach((ids, r) => {
    const line = data.lines[r]!;
    const j = ids.findIndex((id) => id >= vocabSize);
    if (j >= 0) {
      throw dataError(data.source, line, `token id ${ids[j]} is not below the model's vocab_size ${vocabSize}${what === 'text' ? ' (the tokenizer does not belong to this model)' : ''}`,
        what === 'text' ? 'text' : `input_ids[${j}]`);
    }
    if (ids.length < 2) throw dataError(data.source, line, `has ${ids.length} token${ids.length === 1 ? '' : 's'}; next-token training needs at least 2`, what === 'text' ? 'text' : 'input_ids');
  });
  return sequences;
}

/**
 * The encoder for a data set and a model folder. Loads the folder's tokenizer only for text.
 * @param data decides the kind: texts need `<modelDir>/tokenizer.json`, pre-tokenised rows do not
 * @throws FL_ERR_MODEL_CONFIG when texts meet a folder without tokenizer.json (the message says how to proceed)
 */
export async function sequenceEncoder(data: LanguageData, modelDir: string, model: SequenceModel): Promise<SequenceEncoder> {
  if (data.kind === 'tokens') {
    return {
      padId: model.padTokenId ?? model.eosTokenId ?? 0,
      encode: (d) => {
        if (d.kind !== 'tokens') throw dataError(d.source, d.lines[0] ?? 1, 'holds texts, the encoder was made for pre-tokenised rows');
        return check(d.sequences.map((s) => Int32Array.from(s)), d, model.vocabSize, 'input_ids');
      },
    };
  }
  const { encodeSequence, loadTokenizer } = await import('../tokenizer.js');
  const tokenizer = await loadTokenizer(modelDir);
  return {
    tokenizer,
    padId: tokenizer.padId ?? tokenizer.eosId ?? 0,
    encode: (d) => {
      if (d.kind !== 'text') throw dataError(d.source, d.lines[0] ?? 1, 'holds pre-tokenised rows, the encoder was made for texts');
      return check(d.texts.map((t) => encodeSequence(tokenizer, t)), d, model.vocabSize, 'text');
    },
  };
}
