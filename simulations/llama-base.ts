/**
 * The language task's base model: a small llama pre-trained on the WordNet glosses
 * (client/pretrain/llama.ts), cached by its recipe. Pre-training takes minutes on 2 cores, so a
 * folder `<cacheDir>/llama-<key>` (key: SHA-256 of the recipe) is reused when its pretrain.json
 * records the same recipe and the SHA-256 of its weights file matches the one recorded there;
 * otherwise it is pre-trained again (into a temporary folder, renamed when complete, so an
 * interrupted run leaves no half-written cache).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface LlamaBaseRecipe {
  readonly hidden: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly steps: number;
  readonly batchSize: number;
  /** Pre-training window (also the longest fine-tuning sequence; max_position_embeddings is 2x). */
  readonly seqLen: number;
  readonly lr: number;
  readonly seed: number;
}

export interface LlamaBase {
  readonly dir: string;
  readonly sha256: string;
  readonly parameters: number;
  /** Whether the folder came from the cache. */
  readonly cached: boolean;
  /** Pre-training wall time (0 when cached). */
  readonly seconds: number;
  /** Validation perplexity on held-out glosses at the end of pre-training (pretrain.json). */
  readonly glossPerplexity: number;
}

function recipeKey(r: LlamaBaseRecipe): string {
  const canonical = JSON.stringify([r.hidden, r.layers, r.heads, r.kvHeads, r.steps, r.batchSize, r.seqLen, r.lr, r.seed]);
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

interface PretrainRecord {
  sha256?: string;
  seed?: number;
  steps?: number;
  batchSize?: number;
  seqLen?: number;
  lr?: number;
  parameters?: number;
  evals?: Array<{ perplexity: number }>;
  recipe?: string;
}

/**
 * The cached base for a recipe, pre-training it when absent or when the cache does not verify.
 * Needs a tfjs backend already chosen.
 */
export async function ensureLlamaBase(recipe: LlamaBaseRecipe, cacheDir: string, log: (line: string) => void): Promise<LlamaBase> {
  const key = recipeKey(recipe);
  const dir = join(cacheDir, `llama-${key}`);
  const { checkpointSha256 } = await import('../client/checkpoint.js');
  const recordPath = join(dir, 'pretrain.json');
  if (existsSync(recordPath)) {
    const record = JSON.parse(readFileSync(recordPath, 'utf8')) as PretrainRecord;
    const sha256 = await checkpointSha256(dir).catch(() => null);
    if (record.recipe === key && sha256 !== null && sha256 === record.sha256) {
      return { dir, sha256, parameters: record.parameters ?? 0, cached: true, seconds: 0, glossPerplexity: record.evals?.at(-1)?.perplexity ?? Number.NaN };
    }
    log(`base llama cache ${dir} does not verify (recipe or SHA-256 differs): pre-training it again`);
  }
  const { pretrainLlama, llamaSizeOverrides } = await import('../client/pretrain/llama.js');
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const t0 = performance.now();
  log(`pre-training the base llama (hidden ${recipe.hidden}, ${recipe.layers} layers, ${recipe.steps} steps of ${recipe.batchSize} x ${recipe.seqLen} tokens) on the WordNet glosses; cached in ${dir}`);
  const result = await pretrainLlama({
    out: tmp,
    steps: recipe.steps,
    seed: recipe.seed,
    batchSize: recipe.batchSize,
    seqLen: recipe.seqLen,
    lr: recipe.lr,
    configOverrides: { ...llamaSizeOverrides({ hidden: recipe.hidden, layers: recipe.layers, heads: recipe.heads, kvHeads: recipe.kvHeads }), max_position_embeddings: 2 * recipe.seqLen },
    onEval: (e) => log(`  pre-training step ${e.step}/${recipe.steps}: gloss validation perplexity ${e.perplexity.toFixed(2)}`),
  });
  // the cache key joins pretrain.json's record, so a changed recipe never matches an old folder
  const record = JSON.parse(readFileSync(join(tmp, 'pretrain.json'), 'utf8')) as PretrainRecord;
  writeFileSync(join(tmp, 'pretrain.json'), `${JSON.stringify({ ...record, recipe: key }, null, 1)}\n`);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return { dir, sha256: result.sha256, parameters: result.parameters, cached: false, seconds: (performance.now() - t0) / 1000, glossPerplexity: result.evals.at(-1)?.perplexity ?? Number.NaN };
}
