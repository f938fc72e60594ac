import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { parseLlamaConfig, type LlamaConfig } from '../../client/models/llama-config.js';
import { LlamaModel } from '../../client/models/llama.js';
import { randomLlamaWeights } from '../../client/models/llama-init.js';
import { naiveLlamaLogits } from './llama-naive.js';
import { tinyConfigJson } from './llama-tiny-config.js';

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

async function build(config: LlamaConfig, weights: Map<string, Float32Array>): Promise<LlamaModel> {
  return LlamaModel.build(config, (name) => weights.get(name)!);
}

describe.each(['cpu', 'wasm'])('llama forward on the %s backend', (backend) => {
  beforeAll(async () => {
    expect(await tf.setBackend(backend)).toBe(true);
  });
  afterAll(() => {
    tf.disposeVariables();
  });

  for (const tied of [false, true]) {
    it(`equals the float64 reference (tie_word_embeddings ${tied})`, async () => {
      const config = parseLlamaConfig({ ...tinyConfigJson, tie_word_embeddings: tied });
      // std 0.3 makes activations O(1) and attention far from uniform, so errors would show.
      const weights = randomLlamaWeights(config, 7, { std: 0.3, normJitter: 0.5 });
      const model = await build(config, weights);
      const seqs = [[1, 5, 9, 2, 36, 0, 7, 7], [3, 3, 3, 30, 12, 11, 4, 1]];
      const logits = tf.tidy(() => model.logits(tf.tensor2d(seqs, [2, 8], 'int32')));
      const got = await logits.data();
      logits.dispose();
      const want = seqs.flatMap((s) => naiveLlamaLogits(config, weights, s).flat());
      expect(got.length).toBe(want.length);
      const scale = Math.max(...want.map(Math.abs));
      expect(scale).toBeGreaterThan(0.5); // the comparison is not between near-zero numbers
      // float32 has a unit roundoff of 6e-8; every value passes through ~30 dependent ops with
      // dot products of length <= 24, so the accumulated relative error is below ~1e-5. 1e-4
      // relative to the largest logit leaves a margin of 10 and still catches any wrong formula
      // (a wrong rope convention or head mapping changes logits by > 1e-2 here).
      expect(maxAbsDiff(got, want)).toBeLessThan(1e-4 * scale);
      model.dispose();
    });
  }
});

describe('llama semantics (cpu)', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('grows its rotary tables for long sequences and still equals the reference at position 299', async () => {
    const config = parseLlamaConfig({ ...tinyConfigJson, max_position_embeddings: 600 });
    const weights = randomLlamaWeights(config, 13, { std: 0.3 });
    const model = await build(config, weights);
    const short = tf.tidy(() => model.logits(tf.tensor2d([[1, 2, 3]], [1, 3], 'int32')));
    short.dispose(); // tables for 256 positions
    const ids = Array.from({ length: 300 }, (_, i) => (i * 7 + 3) % 37);
    const out = tf.tidy(() => tf.slice(model.logits(tf.tensor2d([ids], [1, 300], 'int32')), [0, 295, 0], [1, 5, -1]));
    const got = await out.data();
    out.dispose();
    const want = naiveLlamaLogits(config, weights, ids).slice(295).flat();
    const scale = Math.max(...want.map(Math.abs));
    // Longer sums (300 keys) than the 8-token test: 2e-4 relative still sits well below a wrong angle.
    expect(maxAbsDiff(got, want)).toBeLessThan(2e-4 * scale);
    model.dispose();
  });

  it('is causal: changing a later token leaves earlier logits unchanged', async () => {
    const config = parseLlamaConfig(tinyConfigJson);
    const model = await build(config, randomLlamaWeights(config, 3, { std: 0.3 }));
    const a = [4, 8, 15, 16, 23, 1];
    const b = [4, 8, 15, 29, 2, 3];
    const out = tf.tidy(() => model.logits(tf.tensor2d([a, b], [2, 6], 'int32')));
    const [la, lb] = (await out.array()) as number[][][];
    out.dispose();
    for (let t = 0; t < 3; t++) expect(maxAbsDiff(la![t]!, lb![t]!)).toBe(0);
    expect(maxAbsDiff(la![3]!, lb![3]!)).toBeGreaterThan(1e-3);
    model.dispose();
  });

  it('maps query heads to key/value heads as repeat_kv does (head j reads kv head floor(j / rep))', async () => {
    // Swapping kv heads 0 <-> 1 together with query-head groups {0,1} <-> {2,3} (q_proj rows and
    // o_proj columns) is a symmetry of the grouped mapping only: with an interleaved mapping
    // (j -> j mod H_kv) the logits would change.
    const config = parseLlamaConfig(tinyConfigJson);
    const weights = randomLlamaWeights(config, 11, { std: 0.3 });
    const d = config.headDim;
    const H = config.hiddenSize;
    const swapRows = (w: Float32Array, block: number, rowLen: number, n: number): Float32Array => {
      const s = new Float32Array(w.length);
      const size = block * rowLen;
      for (let i = 0; i < n; i++) s.set(w.subarray(i * size, (i + 1) * size), (n - 1 - i) * size);
      return s;
    };
    const swapped = new Map(weights);
    for (const l of [0, 1]) {
      const p = `model.layers.${l}.self_attn`;
      for (const m of ['k_proj', 'v_proj']) swapped.set(`${p}.${m}.weight`, swapRows(weights.get(`${p}.${m}.weight`)!, d, H, 2));
      swapped.set(`${p}.q_proj.weight`, swapRows(weights.get(`${p}.q_proj.weight`)!, 2 * d, H, 2));
      const o = weights.get(`${p}.o_proj.weight`)!; // [H, 4d]: swap column blocks
      const so = new Float32Array(o.length);
      for (let r = 0; r < H; r++) {
        so.set(o.subarray(r * 4 * d + 2 * d, r * 4 * d + 4 * d), r * 4 * d);
        so.set(o.subarray(r * 4 * d, r * 4 * d + 2 * d), r * 4 * d + 2 * d);
      }
      swapped.set(`${p}.o_proj.weight`, so);
    }
    const ids = [[1, 2, 3, 4, 5, 6]];
    const run = async (w: Map<string, Float32Array>): Promise<Float32Array> => {
      const model = await build(config, w);
      const out = tf.tidy(() => model.logits(tf.tensor2d(ids, [1, 6], 'int32')));
      const v = (await out.data()) as Float32Array;
      out.dispose();
      model.dispose();
      return v;
    };
    const base = await run(weights);
    expect(maxAbsDiff(base, await run(swapped))).toBeLessThan(1e-5);
    // The same permutation of k/v alone (queries untouched) does change the output.
    const kvOnly = new Map(weights);
    for (const l of [0, 1]) for (const m of ['k_proj', 'v_proj']) kvOnly.set(`model.layers.${l}.self_attn.${m}.weight`, swapped.get(`model.layers.${l}.self_attn.${m}.weight`)!);
    expect(maxAbsDiff(base, await run(kvOnly))).toBeGreaterThan(1e-3);
  });

  it('gives the same loss for padded and unpadded batches when the pads are masked', async () => {
    const config = parseLlamaConfig(tinyConfigJson);
    const model = await build(config, randomLlamaWeights(config, 5, { std: 0.3 }));
    const short = [3, 9, 27, 4];
    const [alone, padded] = tf.tidy(() => [
      model.loss(tf.tensor2d([short], [1, 4], 'int32')),
      model.loss(tf.tensor2d([[...short, 0, 0]], [1, 6], 'int32'), tf.tensor2d([[1, 1, 1, 1, 0, 0]], [1, 6])),
    ]);
    const [l1, l2] = [(await alone!.data())[0]!, (await padded!.data())[0]!];
    tf.dispose([alone!, padded!]);
    expect(Math.abs(l1 - l2)).toBeLessThan(1e-6);
    model.dispose();
  });
});
