/**
 * Pre-training the small base `llama` our experiments start from: a ~3M-parameter decoder with
 * the byte tokenizer, trained on the WordNet 3.0 glosses (simulations/data/wordnet-glosses.txt.gz),
 * reproducibly from a seed, and saved as a Hugging Face checkpoint folder (config.json,
 * model.safetensors, tokenizer.json, tokenizer_config.json) plus pretrain.json with the run's
 * record. Federated LoRA fine-tuning then adapts it, e.g. to one fortunes category per client.
 *
 * Recipe: every weight trained; AdamW (beta2 0.95, weight decay 0.1 on matrices only, as is usual
 * for transformers); linear warmup then cosine decay to 10%; global gradient-norm clipping at 1;
 * batches of random windows of the token stream (BOS + gloss bytes + EOS, glosses shuffled).
 * The same seed gives the same weights on the same backend (seeded initialisation, seeded data
 * order, single-threaded kernels); pretrain.json records the SHA-256 of the weights.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { FedloraError } from '../../shared/errors.js';
import { saveLlamaCheckpoint } from '../checkpoint-save.js';
import { numberedLines, readDataText } from '../data/read-text.js';
import { SeededRandom } from '../data/seeded-random.js';
import { parseLlamaConfig, llamaParameterCount, type LlamaConfig } from '../models/llama-config.js';
import { randomLlamaWeights } from '../models/llama-init.js';
import { LlamaModel } from '../models/llama.js';
import { BYTE_BOS_ID, BYTE_EOS_ID, BYTE_PAD_ID, BYTE_VOCAB_SIZE, ByteTokenizer, byteTokenizerJson } from '../tokenizer-bytes.js';
import { AdamW } from '../train/adamw.js';
import { learningRateAt } from '../train/schedule.js';
import { WORDNET_DATA } from '../data/bundled.js';

/** The default base model: 4 layers, hidden 256, 8 query heads on 4 key/value heads; 2.97M parameters. */
export const LLAMA_WORDNET_CONFIG_JSON = {
  model_type: 'llama',
  vocab_size: BYTE_VOCAB_SIZE,
  hidden_size: 256,
  intermediate_size: 688,
  num_hidden_layers: 4,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  max_position_embeddings: 512,
  tie_word_embeddings: true,
  bos_token_id: BYTE_BOS_ID,
  eos_token_id: BYTE_EOS_ID,
  pad_token_id: BYTE_PAD_ID,
} as const;

/** The size of a llama to pre-train; absent fields keep LLAMA_WORDNET_CONFIG_JSON's. */
export interface LlamaSize {
  readonly hidden?: number;
  readonly layers?: number;
  readonly heads?: number;
  readonly kvHeads?: number;
  /** @default 8/3 x hidden rounded up to a multiple of 8 when `hidden` is given (SwiGLU's usual ratio; 688 for 256) */
  readonly intermediate?: number;
}

/** config.json overrides for a size (what `fedlora pretrain llama --hidden --layers ...` passes). */
export function llamaSizeOverrides(size: LlamaSize): Record<string, number> {
  const out: Record<string, number> = {};
  if (size.hidden !== undefined) {
    out.hidden_size = size.hidden;
    out.intermediate_size = size.intermediate ?? 8 * Math.ceil((size.hidden * 8) / 3 / 8);
  } else if (size.intermediate !== undefined) out.intermediate_size = size.intermediate;
  if (size.layers !== undefined) out.num_hidden_layers = size.layers;
  if (size.heads !== undefined) out.num_attention_heads = size.heads;
  if (size.kvHeads !== undefined) out.num_key_value_heads = size.kvHeads;
  return out;
}

/** The bundled WordNet glosses (an absolute path: works from any directory). */
export const DEFAULT_WORDNET_DATA = WORDNET_DATA;

export interface PretrainLlamaOptions {
  /** Output folder. */
  readonly out: string;
  /** Optimizer steps. */
  readonly steps: number;
  /** @default 0 */
  readonly seed?: number;
  /** One text per line, plain or gzipped. @default DEFAULT_WORDNET_DATA */
  readonly data?: string;
  /** config.json keys overriding LLAMA_WORDNET_CONFIG_JSON (vocab and special ids stay the byte tokenizer's). */
  readonly configOverrides?: Record<string, unknown>;
  /** Sequences per step. @default 16 */
  readonly batchSize?: number;
  /** Tokens per sequence (inputs; each window holds one more for the last target). @default 128 */
  readonly seqLen?: number;
  /** Peak learning rate. @default 3e-3 */
  readonly lr?: number;
  /** @default max(1, round(steps / 20)) */
  readonly warmupSteps?: number;
  /** Fraction of the lines held out for validation. @default 0.02 */
  readonly validationFraction?: number;
  /** Validation windows (of seqLen + 1 tokens) evaluated. @default 32 */
  readonly validationWindows?: number;
  /** Evaluate every this many steps (and at the end). @default max(1, round(steps / 5)) */
  readonly evalEvery?: number;
  /** Called after each step. */
  readonly onStep?: (p: PretrainStep) => void;
  /** Called after each evaluation. */
  readonly onEval?: (e: PretrainEval) => void;
}

export interface PretrainStep {
  readonly step: number;
  readonly loss: number;
  readonly lr: number;
  readonly ms: number;
}

export interface PretrainEval {
  readonly step: number;
  /** Mean next-token negative log-likelihood on the validation windows (nats per byte-token). */
  readonly loss: number;
  readonly perplexity: number;
  /** loss / ln 2: bits per token; tokens are bytes (plus BOS/EOS), so ~bits per byte. */
  readonly bitsPerToken: number;
}

export interface PretrainResult {
  readonly config: LlamaConfig;
  readonly parameters: number;
  readonly trainTokens: number;
  readonly losses: readonly PretrainStep[];
  readonly evals: readonly PretrainEval[];
  /** Median wall-clock milliseconds per step (after the first, which compiles kernels). */
  readonly msPerStepMedian: number;
  readonly sha256: string;
  readonly backend: string;
}

/** BOS + bytes + EOS of every line, concatenated. */
function tokenStream(lines: readonly string[]): Uint16Array {
  const tok = new ByteTokenizer();
  const encoded = lines.map((l) => tok.encode(l));
  const out = new Uint16Array(encoded.reduce((n, e) => n + e.length + 2, 0));
  let at = 0;
  for (const e of encoded) {
    out[at++] = BYTE_BOS_ID;
    out.set(e, at);
    at += e.length;
    out[at++] = BYTE_EOS_ID;
  }
  return out;
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)]!;
}

/** Scales gradients so their global L2 norm is at most maxNorm; returns new tensors. */
function clipByGlobalNorm(grads: tf.Tensor[], maxNorm: number): tf.Tensor[] {
  return tf.tidy(() => {
    const norm = tf.sqrt(tf.addN(grads.map((g) => tf.sum(tf.square(g)))));
    const scale = tf.minimum(1, tf.div(maxNorm, tf.maximum(norm, 1e-12)));
    return grads.map((g) => tf.mul(g, scale));
  });
}

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v <= 0) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `pretrain llama: ${name} must be a positive integer, got ${v}`);
  return v;
}

/**
 * Pre-trains and saves the model on the current tfjs backend.
 * @throws FL_ERR_INVALID_ARGUMENT for bad options, FL_ERR_DATA when the data is too small
 */
export async function pretrainLlama(options: PretrainLlamaOptions): Promise<PretrainResult> {
  const steps = positiveInt('steps', options.steps);
  const seed = options.seed ?? 0;
  const batchSize = positiveInt('batchSize', options.batchSize ?? 16);
  const seqLen = positiveInt('seqLen', options.seqLen ?? 128);
  const lr = options.lr ?? 3e-3;
  if (!(lr > 0)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `pretrain llama: lr must be > 0, got ${lr}`);
  const warmupSteps = options.warmupSteps ?? Math.max(1, Math.round(steps / 20));
  const evalEvery = positiveInt('evalEvery', options.evalEvery ?? Math.max(1, Math.round(steps / 5)));
  const validationFraction = options.validationFraction ?? 0.02;
  const config = parseLlamaConfig({
    ...LLAMA_WORDNET_CONFIG_JSON, ...options.configOverrides,
    vocab_size: BYTE_VOCAB_SIZE, bos_token_id: BYTE_BOS_ID, eos_token_id: BYTE_EOS_ID, pad_token_id: BYTE_PAD_ID,
  }, 'pretrain llama config');
  if (seqLen + 1 > config.maxPositionEmbeddings) {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `pretrain llama: seqLen + 1 (${seqLen + 1}) exceeds max_position_embeddings (${config.maxPositionEmbeddings})`);
  }

  // Data: shuffled lines (seeded), a held-out tail for validation.
  const dataPath = options.data ?? DEFAULT_WORDNET_DATA;
  const lines = numberedLines(await readDataText(dataPath)).map((l) => l.text.trim()).filter((t) => t.length > 0);
  const rng = new SeededRandom(seed, 'pretrain-llama');
  rng.shuffle(lines);
  const nVal = Math.max(1, Math.round(lines.length * validationFraction));
  const train = tokenStream(lines.slice(0, lines.length - nVal));
  const val = tokenStream(lines.slice(lines.length - nVal));
  const window = seqLen + 1;
  if (train.length < window * 2 || val.length < window) {
    throw new FedloraError('FL_ERR_DATA', `${dataPath}: ${train.length} training and ${val.length} validation tokens; need at least ${2 * window} and ${window}`, { file: dataPath });
  }
  const valWindows = Math.min(options.validationWindows ?? 32, Math.floor(val.length / window));
  const valIds = new Int32Array(valWindows * window);
  for (let w = 0; w < valWindows; w++) valIds.set(val.subarray(w * window, (w + 1) * window), w * window);

  const weights = randomLlamaWeights(config, seed);
  const model = await LlamaModel.build(config, (name) => weights.get(name)!, { trainable: true });
  weights.clear();
  const variables = model.trainableVariables();
  const matrices = variables.filter((v) => v.rank === 2);
  const vectors = variables.filter((v) => v.rank !== 2);
  const decayed = new AdamW({ beta1: 0.9, beta2: 0.95, weightDecay: 0.1 });
  const plain = new AdamW({ beta1: 0.9, beta2: 0.95, weightDecay: 0 });
  const schedule = { lr, kind: 'cosine' as const, warmupSteps, totalSteps: steps, minRatio: 0.1 };

  const evaluate = async (step: number): Promise<PretrainEval> => {
    let sum = 0;
    const evalBatch = 8;
    for (let w = 0; w < valWindows; w += evalBatch) {
      const n = Math.min(evalBatch, valWindows - w);
      const loss = tf.tidy(() => model.loss(tf.tensor2d(valIds.subarray(w * window, (w + n) * window), [n, window], 'int32')));
      sum += (await loss.data())[0]! * n;
      loss.dispose();
    }
    const loss = sum / valWindows;
    const e = { step, loss, perplexity: Math.exp(loss), bitsPerToken: loss / Math.LN2 };
    options.onEval?.(e);
    return e;
  };

  const losses: PretrainStep[] = [];
  const evals: PretrainEval[] = [];
  const batch = new Int32Array(batchSize * window);
  try {
    evals.push(await evaluate(0));
    for (let step = 0; step < steps; step++) {
      const t0 = performance.now();
      for (let b = 0; b < batchSize; b++) {
        const start = rng.nextInt(train.length - window + 1);
        batch.set(train.subarray(start, start + window), b * window);
      }
      const stepLr = learningRateAt(step, schedule);
      const lossTensor = tf.tidy(() => {
        const ids = tf.tensor2d(batch, [batchSize, window], 'int32');
        const { value, grads } = tf.variableGrads(() => model.loss(ids), variables);
        const clipped = clipByGlobalNorm(variables.map((v) => grads[v.name]!), 1);
        const byVar = new Map(variables.map((v, i) => [v, clipped[i]!]));
        decayed.applyGradients(matrices, matrices.map((v) => byVar.get(v)!), stepLr);
        plain.applyGradients(vectors, vectors.map((v) => byVar.get(v)!), stepLr);
        return value;
      });
      const lossValue = (await lossTensor.data())[0]!;
      lossTensor.dispose();
      const p = { step: step + 1, loss: lossValue, lr: stepLr, ms: performance.now() - t0 };
      losses.push(p);
      options.onStep?.(p);
      if ((step + 1) % evalEvery === 0 || step + 1 === steps) evals.push(await evaluate(step + 1));
    }
    await mkdir(options.out, { recursive: true });
    const sha256 = await saveLlamaCheckpoint(model, options.out, {
      tokenizer: byteTokenizerJson(),
      metadata: { fedlora: 'pretrain llama', seed: String(seed), steps: String(steps) },
    });
    const result: PretrainResult = {
      config, parameters: llamaParameterCount(config), trainTokens: steps * batchSize * seqLen, losses, evals,
      msPerStepMedian: median(losses.slice(1).map((l) => l.ms)), sha256, backend: tf.getBackend(),
    };
    const record = {
      command: 'fedlora pretrain llama', data: dataPath, seed, steps, batchSize, seqLen, lr, warmupSteps, schedule: 'cosine to 10%',
      optimizer: 'AdamW beta1 0.9 beta2 0.95, weight decay 0.1 on matrices, grad-norm clip 1',
      parameters: result.parameters, trainTokens: result.trainTokens, backend: result.backend,
      msPerStepMedian: Number(result.msPerStepMedian.toFixed(1)), sha256,
      evals: evals.map((e) => ({ step: e.step, loss: Number(e.loss.toFixed(4)), perplexity: Number(e.perplexity.toFixed(3)) })),
      losses: losses.map((l) => [l.step, Number(l.loss.toFixed(4))]),
    };
    await writeFile(join(options.out, 'pretrain.json'), `${JSON.stringify(record, null, 1)}\n`);
    return result;
  } finally {
    decayed.dispose();
    plain.dispose();
    model.dispose();
  }
}
