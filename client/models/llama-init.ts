/**
 * Random initial weights for a `llama` config, in the Hugging Face layout, seeded: the
 * initialisation transformers uses for `LlamaForCausalLM` (every linear and the embedding
 * N(0, initializer_range^2), RMSNorm weights 1). Pre-training starts here; tests also perturb
 * the norm weights so a forward pass that forgets them fails.
 */
import * as tf from '@tensorflow/tfjs';
import type { LlamaConfig } from './llama-config.js';
import { llamaTensorShapes } from './llama-names.js';

export interface LlamaInitOptions {
  /** @default 0.02 (transformers' initializer_range) */
  std?: number;
  /**
   * Spread of the RMSNorm weights around 1 (0 gives exactly 1, as transformers does).
   * @default 0
   */
  normJitter?: number;
}

/**
 * Seeded random weights, one Float32Array per Hugging Face tensor name ([out, in] for linears).
 * Each tensor draws from tfjs' seeded generator with seed `1009 seed + its index + 1`, so the result does
 * not depend on the backend (random ops run in tfjs-core's JS on every backend).
 */
export function randomLlamaWeights(config: LlamaConfig, seed: number, options: LlamaInitOptions = {}): Map<string, Float32Array> {
  const std = options.std ?? 0.02;
  const jitter = options.normJitter ?? 0;
  const out = new Map<string, Float32Array>();
  let index = 0;
  for (const [name, shape] of llamaTensorShapes(config)) {
    // Never 0: tfjs treats a seed of 0 as 'no seed' and draws from Math.random (rand_util.js).
    const s = seed * 1009 + ++index;
    const isNorm = shape.length === 1;
    const values = tf.tidy(() => {
      if (!isNorm) return tf.randomNormal(shape, 0, std, 'float32', s).dataSync() as Float32Array;
      if (jitter === 0) return new Float32Array(shape[0]!).fill(1);
      return tf.add(1, tf.randomUniform(shape, -jitter, jitter, 'float32', s)).dataSync() as Float32Array;
    });
    out.set(name, Float32Array.from(values));
  }
  return out;
}
