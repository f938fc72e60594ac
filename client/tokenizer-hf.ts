/**
 * Tokenizers of real checkpoints, from their `tokenizer.json` (+ `tokenizer_config.json`), through
 * the maintained `@huggingface/tokenizers` library (pure JS: BPE, WordPiece, Unigram with their
 * normalizers, pre-tokenizers and decoders), rather than a hand-written BPE.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { FedloraError } from '../shared/errors.js';
import type { TextTokenizer } from './tokenizer-types.js';

async function readJson(file: string, required: boolean): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if (!required && (e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FedloraError('FL_ERR_MODEL_CONFIG', `${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { file }, { cause: e });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new FedloraError('FL_ERR_MODEL_CONFIG', `${file}: not valid JSON (${(e as Error).message})`, { file }, { cause: e });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FedloraError('FL_ERR_MODEL_CONFIG', `${file}: must hold a JSON object`, { file });
  }
  return value as Record<string, unknown>;
}

/** A special token of tokenizer_config.json: a string, or an AddedToken object `{content: ...}`. */
function tokenText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value !== null && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return undefined;
}

export class HfTokenizer implements TextTokenizer {
  readonly kind = 'tokenizer.json' as const;
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  readonly padId: number | undefined;
  private readonly tokenizer: Tokenizer;

  /**
   * @param tokenizerJson the parsed tokenizer.json
   * @param config the parsed tokenizer_config.json, or {} when the folder has none
   * @param source the file, for error messages
   */
  constructor(tokenizerJson: Record<string, unknown>, config: Record<string, unknown>, source = 'tokenizer.json') {
    try {
      this.tokenizer = new Tokenizer(tokenizerJson, config);
    } catch (e) {
      throw new FedloraError('FL_ERR_MODEL_CONFIG', `${source}: @huggingface/tokenizers cannot build it (${(e as Error).message})`, { file: source }, { cause: e });
    }
    let max = -1;
    for (const id of this.tokenizer.get_vocab(true).values()) max = Math.max(max, id);
    this.vocabSize = max + 1;
    const id = (key: string): number | undefined => {
      const text = tokenText(config[key]);
      return text === undefined ? undefined : this.tokenizer.token_to_id(text);
    };
    this.bosId = id('bos_token');
    this.eosId = id('eos_token');
    this.padId = id('pad_token');
  }

  encode(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: readonly number[]): string {
    if (ids.length === 0) return ''; // the library refuses an empty list
    return this.tokenizer.decode([...ids], { skip_special_tokens: true });
  }
}

/** Reads `tokenizer.json` and, when present, `tokenizer_config.json` from a model folder. */
export async function loadHfTokenizer(dir: string): Promise<HfTokenizer> {
  const file = join(dir, 'tokenizer.json');
  const json = (await readJson(file, true))!;
  const config = (await readJson(join(dir, 'tokenizer_config.json'), false)) ?? {};
  return new HfTokenizer(json, config, file);
}
