/**
 * Random initial weights for a `llama` config, in the Hugging Face layout, seeded: the
 * initialisation transformers uses for `LlamaForCausalLM` (every linear and the embedding
 * N(0, initializer_range^2), RMSNorm weights 1). Pre-training starts here; tests also perturb
 * the norm weights so a forward pass that forgets them fails.
 */
import { seededNormalValues, seededUniformValues } from '../lora/seeded-draws.js';
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
 * Each tensor draws tfjs' seeded values (client/lora/seeded-draws.ts, plain JS: no device read) with
 * seed `1009 seed + its index + 1`, so the result does not depend on the backend.
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
    const count = shape.reduce((a, b) => a * b, 1);
    let values: Float32Array;
    if (!isNorm) values = seededNormalValues(count, 0, std, s);
    else if (jitter === 0) values = new Float32Array(count).fill(1);
    else values = seededUniformValues(count, -jitter, jitter, s).map((v) => 1 + v);
    out.set(name, values);
  }
  return out;
}
