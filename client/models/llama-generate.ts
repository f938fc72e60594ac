/**
 * Text continuation with the `llama` model, for looking at what a base model or an adapter has
 * learnt (samples in reports, a data owner's sanity check). No KV cache: each new token
 * recomputes the whole sequence, which is fine for the short samples this is for
 * (cost grows with the square of the length); the window slides when it reaches
 * max_position_embeddings.
 */
import * as tf from '@tensorflow/tfjs';
import { FedloraError } from '../../shared/errors.js';
import { SeededRandom } from '../data/seeded-random.js';
import type { LlamaModel } from './llama.js';

export interface GenerateOptions {
  /** Tokens to add. */
  readonly maxNewTokens: number;
  /** 0 = greedy (argmax); otherwise softmax(logits / temperature) is sampled. @default 0 */
  readonly temperature?: number;
  /** Sample only among the k most likely tokens (0 = all). @default 0 */
  readonly topK?: number;
  /** Stop after producing this id (it is included). */
  readonly eosId?: number;
  /** Seed of the sampling. @default 0 */
  readonly seed?: number;
}

/**
 * Continues `prompt` (token ids, at least one) and returns only the new ids.
 * @throws FL_ERR_INVALID_ARGUMENT for an empty prompt or bad options
 */
export async function generate(model: LlamaModel, prompt: readonly number[], options: GenerateOptions): Promise<number[]> {
  const temperature = options.temperature ?? 0;
  const topK = options.topK ?? 0;
  if (prompt.length === 0) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', 'generate: the prompt needs at least one token (e.g. BOS)');
  if (!Number.isInteger(options.maxNewTokens) || options.maxNewTokens < 0) {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `generate: maxNewTokens must be an integer >= 0, got ${options.maxNewTokens}`);
  }
  if (!(temperature >= 0)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `generate: temperature must be >= 0, got ${temperature}`);
  if (!Number.isInteger(topK) || topK < 0) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `generate: topK must be an integer >= 0, got ${topK}`);
  const rng = new SeededRandom(options.seed ?? 0, 'llama-generate');
  const window = model.config.maxPositionEmbeddings;
  const ids = [...prompt];
  const out: number[] = [];
  for (let i = 0; i < options.maxNewTokens; i++) {
    const context = ids.slice(-window);
    const last = tf.tidy(() => {
      const logits = model.logits(tf.tensor2d([context], [1, context.length], 'int32'));
      return tf.reshape(tf.slice(logits, [0, context.length - 1, 0], [1, 1, -1]), [-1]);
    });
    const values = (await last.data()) as Float32Array;
    last.dispose();
    const next = temperature === 0 ? argmax(values) : sample(values, temperature, topK, rng);
    ids.push(next);
    out.push(next);
    if (next === options.eosId) break;
  }
  return out;
}

function argmax(values: Float32Array): number {
  let best = 0;
  for (let j = 1; j < values.length; j++) if (values[j]! > values[best]!) best = j;
  return best;
}

/** Draws from softmax(logits / temperature) restricted to the top k, in float64. */
function sample(logits: Float32Array, temperature: number, topK: number, rng: SeededRandom): number {
  let order = Array.from(logits.keys());
  if (topK > 0 && topK < order.length) order = order.sort((a, b) => logits[b]! - logits[a]!).slice(0, topK);
  const max = Math.max(...order.map((j) => logits[j]!));
  const weights = order.map((j) => Math.exp((logits[j]! - max) / temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  let u = rng.nextFloat() * total;
  for (let k = 0; k < order.length; k++) {
    u -= weights[k]!;
    if (u < 0) return order[k]!;
  }
  return order[order.length - 1]!;
}
