/**
 * `fedlora sim --data fortunes`: the language task. A small llama pre-trained on the WordNet
 * glosses (llama-base.ts, cached) is fine-tuned with LoRA across fortune categories
 * (fortunes.ts; `--partition category`: client k holds category k), and every adapter is scored
 * by perplexity on each category's held-out quotes and on their union (perplexity.ts). With
 * `--baselines`, the same budget is also spent on local-only LoRA (each client alone) and
 * centralised LoRA (one adapter on the union of the clients' training quotes), in the sim's
 * worker threads.
 */
import type { Adapter } from '../shared/adapter.js';
import { FedloraError } from '../shared/errors.js';
import type { BaseModel } from '../client/agent/base-model.js';
import type { ExampleSource } from '../client/data/batches.js';
import { loadFortunes, type FortuneData } from './fortunes.js';
import { ensureLlamaBase, type LlamaBase, type LlamaBaseRecipe } from './llama-base.js';
import type { PerplexityResult } from './perplexity.js';
import { encodeTexts, selectSequences, type PackedSequences } from './token-sequences.js';
import type { ClientPool } from './client-pool.js';
import type { WorkerTokens } from './worker-protocol.js';

export interface LanguageOptions {
  /** Fortune categories; client k holds categories[k] under `--partition category`. */
  readonly categories: readonly string[];
  /** Quotes kept per category before the test split. @default 125 */
  readonly perCategory: number;
  /** The base model's recipe (its seqLen also bounds the quotes: at most seqLen - 2 bytes). */
  readonly base: LlamaBaseRecipe;
  /** Where pre-trained bases are cached. @default out/cache */
  readonly cacheDir: string;
  /** PEFT target modules; `all-linear` for every linear of every layer. @default all-linear */
  readonly targetModules: readonly string[] | 'all-linear';
  /** Also run the local-only and centralised baselines. @default false */
  readonly baselines: boolean;
}

export interface LanguageSetup {
  readonly fortunes: FortuneData;
  readonly base: LlamaBase;
  readonly model: BaseModel;
  readonly tokens: WorkerTokens;
  /** Encoded training quotes (the federated pool), index-aligned with fortunes.train. */
  readonly train: readonly Int32Array[];
  /** Packed test quotes per category. */
  readonly tests: ReadonlyArray<{ readonly name: string; readonly sequences: PackedSequences }>;
  /** The same test sets as example sources, for the driver's evaluations. */
  readonly testSources: ReadonlyArray<{ readonly name: string; readonly source: ExampleSource }>;
  /** Module paths the jobs adapt. */
  readonly modules: readonly string[];
}

/** Loads the quotes, makes sure the base model exists (cache or pre-training), encodes everything. */
export async function setupLanguageTask(lang: LanguageOptions, split: { testFraction: number; seed: number }, log: (line: string) => void): Promise<LanguageSetup> {
  const seqLen = lang.base.seqLen;
  const fortunes = await loadFortunes({ categories: lang.categories, perCategory: lang.perCategory, maxBytes: seqLen - 1, testFraction: split.testFraction, seed: split.seed });
  const base = await ensureLlamaBase(lang.base, lang.cacheDir, log);
  const [{ loadBaseModel, matchModules }, { loadTokenizer }, { tokenSource }, { unpackSequences }] = await Promise.all([
    import('../client/agent/base-model.js'),
    import('../client/tokenizer.js'),
    import('../client/data/batches.js'),
    import('./token-sequences.js'),
  ]);
  const model = await loadBaseModel(base.dir);
  if (model.sha256 !== base.sha256) throw new FedloraError('FL_ERR_CHECKPOINT', `${base.dir}: weights hash ${model.sha256}, pre-training recorded ${base.sha256}`, { file: base.dir });
  const tokenizer = await loadTokenizer(base.dir);
  const tokens: WorkerTokens = { seqLen, padId: tokenizer.padId ?? tokenizer.eosId ?? 0 };
  const train = encodeTexts(fortunes.train.texts, tokenizer);
  const testAll = encodeTexts(fortunes.test.texts, tokenizer);
  const tests = fortunes.categories.map((name, c) => ({
    name,
    sequences: selectSequences(testAll, Array.from(fortunes.test.labels.keys()).filter((i) => fortunes.test.labels[i] === c)),
  }));
  const testSources = tests.map((t) => ({ name: t.name, source: tokenSource(unpackSequences(t.sequences), seqLen, tokens.padId) }));
  const modules = (lang.targetModules === 'all-linear' ? model.adaptable : matchModules(model.adaptable, lang.targetModules)).map((m) => m.path);
  if (modules.length === 0) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--target-modules ${String(lang.targetModules)} matches no module of the base llama (${model.adaptable.map((m) => m.path).join(', ')})`, { option: 'target-modules' });
  return { fortunes, base, model, tokens, train, tests, testSources, modules };
}

/** The base model with a global adapter (or none), scored on every category and on the union. */
export async function evaluateLanguage(setup: LanguageSetup, adapter: Adapter | null): Promise<PerplexityResult> {
  const { evaluatePerplexity } = await import('./perplexity.js');
  const first = adapter?.layout.modules[0];
  const model = await setup.model.build({ variant: adapter?.layout.variant ?? 'lora', rank: first?.rank ?? 1, alpha: first?.alpha ?? 1, modules: adapter === null ? setup.modules : adapter.layout.modules.map((m) => m.path), seed: 1 });
  try {
    // without an adapter the fresh factors have B = 0: the model is the base model exactly
    if (adapter !== null) model.loadGlobal(adapter);
    return await evaluatePerplexity(model, setup.testSources);
  } finally {
    model.dispose();
  }
}

export interface LocalBaseline {
  readonly client: number;
  /** The categories the client holds (one under `--partition category`). */
  readonly categories: readonly string[];
  /** Perplexity on the client's own category's test quotes (the mean over its categories' tokens when it holds several). */
  readonly ownPerplexity: number;
  readonly perplexity: number;
  readonly byCategory: Record<string, number>;
  readonly steps: number;
  readonly trainLoss: number;
  readonly seconds: number;
}

export interface LanguageBaselines {
  readonly training: { readonly rounds: number; readonly epochs: number; readonly batchSize: number; readonly lr: number; readonly rank: number; readonly alpha: number };
  /** One adapter per client, trained on its data alone. */
  readonly local: readonly LocalBaseline[];
  /** Means over clients of the local adapters' own-category and union perplexity. */
  readonly localMeanOwnPerplexity: number;
  readonly localMeanPerplexity: number;
  /** One adapter trained on the union of the clients' training quotes. */
  readonly centralised: { readonly perplexity: number; readonly byCategory: Record<string, number>; readonly steps: number; readonly trainLoss: number; readonly seconds: number };
  readonly wallSeconds: number;
}

/**
 * Local-only and centralised LoRA with the federated jobs' budget: the same rounds x epochs passes
 * over each example, batch size, lr, rank and modules (a fresh AdamW per round, as an agent).
 */
export async function runLanguageBaselines(
  setup: LanguageSetup,
  pool: ClientPool,
  partition: readonly Int32Array[],
  t: LanguageBaselines['training'] & { seed: number },
  log: (line: string) => void,
): Promise<LanguageBaselines> {
  const t0 = performance.now();
  const lora = { rank: t.rank, alpha: t.alpha, modules: setup.modules, seed: t.seed };
  const training = { rounds: t.rounds, epochs: t.epochs, batchSize: t.batchSize, lr: t.lr };
  const all = Int32Array.from(partition.flatMap((p) => [...p]));
  // the centralised task first: it is the longest, so the other worker takes the local ones meanwhile
  const tasks = [all, ...partition].map((rows) => ({ train: selectSequences(setup.train, rows), tests: setup.tests, tokens: setup.tokens, lora, training }));
  const outcomes = await pool.runBaselines(tasks, (i, o) => {
    log(`[baseline] ${i === 0 ? 'centralised' : `local-only client ${i - 1}`}: ${o.steps} steps, union perplexity ${o.result.perplexity.toFixed(3)}  ${o.seconds.toFixed(1)} s`);
  });
  const labels = setup.fortunes.train.labels;
  const local: LocalBaseline[] = partition.map((rows, k) => {
    const o = outcomes[k + 1]!;
    const cats = [...new Set(Array.from(rows, (r) => labels[r]!))].sort((a, b) => a - b).map((c) => setup.fortunes.categories[c]!);
    // own perplexity over the client's categories, token-weighted as the union is
    const own = cats.map((name) => ({ ppl: o.result.byCategory[name]!, tokens: tokenCount(setup.tests.find((x) => x.name === name)!.sequences) }));
    const ownTokens = own.reduce((a, x) => a + x.tokens, 0);
    const ownPerplexity = Math.exp(own.reduce((a, x) => a + Math.log(x.ppl) * x.tokens, 0) / Math.max(1, ownTokens));
    return { client: k, categories: cats, ownPerplexity, perplexity: o.result.perplexity, byCategory: o.result.byCategory, steps: o.steps, trainLoss: o.trainLoss, seconds: o.seconds };
  });
  const c = outcomes[0]!;
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  return {
    training: { rounds: t.rounds, epochs: t.epochs, batchSize: t.batchSize, lr: t.lr, rank: t.rank, alpha: t.alpha },
    local,
    localMeanOwnPerplexity: mean(local.map((l) => l.ownPerplexity)),
    localMeanPerplexity: mean(local.map((l) => l.perplexity)),
    centralised: { perplexity: c.result.perplexity, byCategory: c.result.byCategory, steps: c.steps, trainLoss: c.trainLoss, seconds: c.seconds },
    wallSeconds: (performance.now() - t0) / 1000,
  };
}

/** Counted target tokens of packed sequences (each sequence of L tokens predicts L - 1). */
function tokenCount(p: PackedSequences): number {
  return p.ids.length - (p.offsets.length - 1);
}
