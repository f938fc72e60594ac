import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { tokenSource } from '../../client/data/batches.js';
import { parseLlamaConfig } from '../../client/models/llama-config.js';
import { randomLlamaWeights } from '../../client/models/llama-init.js';
import { LlamaLoraModel } from '../../client/models/llama-lora.js';
import { LlamaModel } from '../../client/models/llama.js';
import { evaluatePerplexity } from '../../simulations/perplexity.js';
import { packSequences, unpackSequences } from '../../simulations/token-sequences.js';
import { naiveLlamaLogits } from '../client/llama-naive.js';
import { tinyConfigJson } from '../client/llama-tiny-config.js';

/** Sum of -log softmax(logits_t)[next token] over the positions, from the independent float64 forward pass. */
function naiveNll(logits: number[][], ids: readonly number[]): number {
  let nll = 0;
  for (let t = 0; t + 1 < ids.length; t++) {
    const row = logits[t]!;
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0));
    nll += lse - row[ids[t + 1]!]!;
  }
  return nll;
}

describe('perplexity of the language task', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('is exp(total NLL / total tokens) per set and over the union, as recomputed from an independent forward pass', async () => {
    const config = parseLlamaConfig(tinyConfigJson);
    const weights = randomLlamaWeights(config, 5, { std: 0.3 });
    const base = await LlamaModel.build(config, (name) => weights.get(name)!);
    const model = LlamaLoraModel.attach(base, { targetModules: ['q_proj'], variant: 'lora', rank: 2, alpha: 2, seed: 1 });
    // unequal lengths, so padding and masking matter; seqLen 7 fits the longest (8 tokens)
    const setA = [[1, 5, 9, 2], [3, 3, 7, 8, 30, 2]].map((s) => Int32Array.from(s));
    const setB = [[4, 11, 12, 13, 14, 15, 16, 2], [6, 2]].map((s) => Int32Array.from(s));
    const pad = 0;
    const sets = [
      { name: 'a', source: tokenSource(unpackSequences(packSequences(setA)), 7, pad) },
      { name: 'b', source: tokenSource(setB, 7, pad) },
    ];
    const got = await evaluatePerplexity(model, sets);
    const stats = (seqs: Int32Array[]): { nll: number; tokens: number } =>
      seqs.reduce((acc, s) => ({ nll: acc.nll + naiveNll(naiveLlamaLogits(config, weights, [...s]), [...s]), tokens: acc.tokens + s.length - 1 }), { nll: 0, tokens: 0 });
    const a = stats(setA);
    const b = stats(setB);
    expect(got.tokens).toBe(a.tokens + b.tokens);
    expect(got.byCategory.a).toBeCloseTo(Math.exp(a.nll / a.tokens), 4);
    expect(got.byCategory.b).toBeCloseTo(Math.exp(b.nll / b.tokens), 4);
    expect(got.perplexity).toBeCloseTo(Math.exp((a.nll + b.nll) / (a.tokens + b.tokens)), 4);
    // the union is token-weighted, not the mean of the two perplexities
    expect(Math.abs(got.perplexity - (got.byCategory.a! + got.byCategory.b!) / 2)).toBeGreaterThan(1e-3);
    model.dispose();
  });
});
