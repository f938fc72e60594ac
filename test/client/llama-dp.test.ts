import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { tokenSource } from '../../client/data/batches.js';
import { parseLlamaConfig } from '../../client/models/llama-config.js';
import { randomLlamaWeights } from '../../client/models/llama-init.js';
import { LlamaLoraModel } from '../../client/models/llama-lora.js';
import { LlamaModel } from '../../client/models/llama.js';
import { clippedGradientSum } from '../../client/train/dp-sgd.js';
import { tinyConfigJson } from './llama-tiny-config.js';
import { seededNormalValues } from '../../client/lora/seeded-draws.js';

/**
 * DP-SGD on the llama: the ghost clipping of client/train/dp-sgd.ts reads each example's rows of
 * every LoRA matmul from the layer input's first axis, so the model must hand its LoRA layers
 * [B, T, hidden] (not [B * T, hidden]). Ghost and per-example (microbatch) clipping must agree.
 */
describe('DP-SGD clipped sums on the llama (cpu)', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  for (const variant of ['lora', 'ffa', 'fedsb'] as const) {
    it(`ghost clipping equals per-example clipping (${variant}, sequences of unequal length)`, async () => {
      const config = parseLlamaConfig(tinyConfigJson);
      const weights = randomLlamaWeights(config, 9, { std: 0.3 });
      const model = LlamaLoraModel.attach(await LlamaModel.build(config, (n) => weights.get(n)!),
        { targetModules: ['q_proj', 'v_proj', 'down_proj'], variant, rank: 2, alpha: 4, seed: 5 });
      // Non-zero B (and R) so every factor gets a gradient.
      for (const m of model.modules().values()) {
        m.setFactors({
          ...(variant === 'fedsb' ? { R: seededNormalValues(m.rank * m.rank, 0, 0.5, 11) }
            : { B: seededNormalValues(m.outFeatures * m.rank, 0, 0.5, 12) }),
        });
      }
      const seqs = [[1, 4, 9, 16, 25, 36, 2], [3, 1, 4, 1, 5], [2, 7, 1, 8, 2, 8, 1, 8, 2], [6, 6]].map((s) => Int32Array.from(s));
      const source = tokenSource(seqs, 6, 0);
      const indices = [0, 1, 2, 3];
      // C small enough that some examples are clipped, large enough that not all are.
      const probe = await clippedGradientSum(model, source, indices, 1e9, 'microbatch');
      const sorted = [...probe.norms].sort((a, b) => a - b);
      const C = (sorted[1]! + sorted[2]!) / 2;
      const ghost = await clippedGradientSum(model, source, indices, C, 'ghost');
      const micro = await clippedGradientSum(model, source, indices, C, 'microbatch');
      expect(ghost.unclipped).toBe(2);
      expect(micro.unclipped).toBe(2);
      ghost.norms.forEach((n, i) => expect(Math.abs(n - micro.norms[i]!)).toBeLessThan(1e-4 * Math.max(1, n)));
      // float32 products summed in other orders; the sums are O(C) = O(1).
      ghost.sums.forEach((s, k) => {
        let d = 0;
        for (let j = 0; j < s.length; j++) d = Math.max(d, Math.abs(s[j]! - micro.sums[k]![j]!));
        expect(d).toBeLessThan(1e-4);
      });
      model.dispose();
    });
  }
});
