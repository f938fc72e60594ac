import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { parseLlamaConfig } from '../../client/models/llama-config.js';
import { generate } from '../../client/models/llama-generate.js';
import { randomLlamaWeights } from '../../client/models/llama-init.js';
import { LlamaModel } from '../../client/models/llama.js';
import { isFedloraError } from '../../shared/errors.js';
import { naiveLlamaLogits } from './llama-naive.js';
import { tinyConfigJson } from './llama-tiny-config.js';

const config = parseLlamaConfig(tinyConfigJson);
const weights = randomLlamaWeights(config, 31, { std: 0.4 });

describe('llama text continuation (cpu)', () => {
  let model: LlamaModel;
  beforeAll(async () => {
    await tf.setBackend('cpu');
    model = await LlamaModel.build(config, (n) => weights.get(n)!);
  });

  it('greedy: each new token is the argmax of the float64 reference on the sequence so far', async () => {
    const prompt = [3, 14, 15];
    const got = await generate(model, prompt, { maxNewTokens: 6 });
    expect(got).toHaveLength(6);
    const ids = [...prompt];
    for (const token of got) {
      const last = naiveLlamaLogits(config, weights, ids).at(-1)!;
      const sorted = [...last].sort((a, b) => b - a);
      // Guard against a near-tie, where float32 and float64 may pick differently.
      expect(sorted[0]! - sorted[1]!).toBeGreaterThan(1e-4);
      expect(token).toBe(last.indexOf(sorted[0]!));
      ids.push(token);
    }
  });

  it('sampling is reproducible from its seed, stays in the top k, and stops at EOS', async () => {
    const a = await generate(model, [1, 2], { maxNewTokens: 12, temperature: 1, seed: 4 });
    const b = await generate(model, [1, 2], { maxNewTokens: 12, temperature: 1, seed: 4 });
    const c = await generate(model, [1, 2], { maxNewTokens: 12, temperature: 1, seed: 5 });
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
    const top1 = await generate(model, [1, 2], { maxNewTokens: 5, temperature: 2, topK: 1, seed: 9 });
    expect(top1).toEqual(await generate(model, [1, 2], { maxNewTokens: 5 })); // top-1 sampling is greedy
    const eos = a[3]!;
    const stopped = await generate(model, [1, 2], { maxNewTokens: 12, temperature: 1, seed: 4, eosId: eos });
    expect(stopped).toEqual(a.slice(0, a.indexOf(eos) + 1));
  });

  it('slides its window past max_position_embeddings and refuses an empty prompt', async () => {
    const long = Array.from({ length: 30 }, (_, i) => i % 37);
    const got = await generate(model, long, { maxNewTokens: 4 }); // 34 > 32 positions
    expect(got).toHaveLength(4);
    await expect(generate(model, [], { maxNewTokens: 1 })).rejects.toSatisfy((e) => isFedloraError(e, 'FL_ERR_INVALID_ARGUMENT'));
  });
});
