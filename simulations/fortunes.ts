/**
 * The language task's data: the BSD fortunes (simulations/data/fortunes/<category>.txt, quotes
 * separated by a line holding only `%`; LICENSE.fortunes), one category per label. Only quotes
 * that fit a training window whole are kept (BOS + bytes + EOS <= seqLen + 1 tokens), so nothing
 * is cut and perplexity is over whole quotes. Per category, a seeded shuffle, a cap, and a
 * held-out test part; the training parts form the federated pool the partitioner deals out
 * (`category`: client k holds category k).
 */
import { readFile, readdir } from 'node:fs/promises';
import { FedloraError } from '../shared/errors.js';

export const FORTUNES_DIR = new URL('./data/fortunes/', import.meta.url).pathname;

/** Six categories of distinct style, each with >= 110 quotes of at most 126 bytes. */
export const DEFAULT_FORTUNE_CATEGORIES = ['computers', 'definitions', 'food', 'love', 'politics', 'science'] as const;

export interface FortuneOptions {
  readonly categories: readonly string[];
  /** Quotes kept per category (before the test split). */
  readonly perCategory: number;
  /** Longest quote kept, in bytes (the byte tokenizer: BOS + bytes + EOS must fit seqLen + 1). */
  readonly maxBytes: number;
  /** Fraction of each category's quotes held out for testing. */
  readonly testFraction: number;
  readonly seed: number;
  /** @default FORTUNES_DIR */
  readonly dir?: string;
}

/** Texts with their category index. */
export interface LabelledTexts {
  readonly texts: readonly string[];
  readonly labels: Int32Array;
}

export interface FortuneData {
  readonly categories: readonly string[];
  readonly train: LabelledTexts;
  readonly test: LabelledTexts;
}

/** The quotes of one fortune file, in file order (a line holding only `%` separates them). */
export function parseFortunes(text: string): string[] {
  return text
    .split(/\r?\n%\r?\n/)
    .map((q) => q.replace(/^\r?\n+|(\r?\n)+%?\s*$/g, ''))
    .filter((q) => q.trim().length > 0);
}

/** The categories present in a fortunes folder. */
export async function fortuneCategories(dir = FORTUNES_DIR): Promise<string[]> {
  return (await readdir(dir)).filter((f) => f.endsWith('.txt')).map((f) => f.slice(0, -4)).sort();
}

/**
 * Loads, filters, caps and splits the categories (seeded).
 * @throws FL_ERR_INVALID_ARGUMENT for an unknown category (the list names the known ones); FL_ERR_DATA when a category keeps fewer than 5 quotes
 */
export async function loadFortunes(o: FortuneOptions): Promise<FortuneData> {
  const dir = o.dir ?? FORTUNES_DIR;
  const known = await fortuneCategories(dir);
  const { SeededRandom } = await import('../client/data/seeded-random.js');
  const train: string[] = [];
  const trainLabels: number[] = [];
  const test: string[] = [];
  const testLabels: number[] = [];
  for (const [c, name] of o.categories.entries()) {
    if (!known.includes(name)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--categories: no fortune category '${name}'; known: ${known.join(', ')}`, { option: 'categories' });
    const quotes = parseFortunes(await readFile(`${dir}/${name}.txt`, 'utf8')).filter((q) => Buffer.byteLength(q, 'utf8') <= o.maxBytes);
    if (quotes.length < 5) throw new FedloraError('FL_ERR_DATA', `fortunes ${name}: ${quotes.length} quotes of at most ${o.maxBytes} bytes; need at least 5`, { file: `${dir}/${name}.txt` });
    new SeededRandom(o.seed, `fortunes:${name}`).shuffle(quotes);
    const kept = quotes.slice(0, o.perCategory);
    const nTest = Math.max(1, Math.round(kept.length * o.testFraction));
    for (const q of kept.slice(0, nTest)) {
      test.push(q);
      testLabels.push(c);
    }
    for (const q of kept.slice(nTest)) {
      train.push(q);
      trainLabels.push(c);
    }
  }
  return { categories: [...o.categories], train: { texts: train, labels: Int32Array.from(trainLabels) }, test: { texts: test, labels: Int32Array.from(testLabels) } };
}
