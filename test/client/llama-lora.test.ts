import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { parseLlamaConfig } from '../../client/models/llama-config.js';
import { randomLlamaWeights } from '../../client/models/llama-init.js';
import { LlamaLoraModel, matchTargetModules } from '../../client/models/llama-lora.js';
import { LlamaModel } from '../../client/models/llama.js';
import { ByteTokenizer } from '../../client/tokenizer-bytes.js';
import { peftTensorNames } from '../../shared/adapter.js';
import { isFedloraError } from '../../shared/errors.js';
import { naiveLlamaLogits } from './llama-naive.js';
import { tinyConfigJson } from './llama-tiny-config.js';
import { seededNormalValues } from '../../client/lora/seeded-draws.js';

const config = parseLlamaConfig(tinyConfigJson);

async function base(weights: Map<string, Float32Array>, c = config): Promise<LlamaModel> {
  return LlamaModel.build(c, (name) => weights.get(name)!);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Row-major [m, n] += s * B [m, r] @ A [r, n], in float64. */
function mergeInto(w: Float32Array, B: Float32Array, A: Float32Array, m: number, n: number, r: number, s: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let k = 0; k < r; k++) acc += B[i * r + k]! * A[k * n + j]!;
      out[i * n + j] = w[i * n + j]! + s * acc;
    }
  }
  return out;
}

describe('llama with LoRA (cpu)', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('matches target modules as PEFT does', () => {
    const paths = ['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.0.mlp.up_proj', 'model.layers.1.self_attn.q_proj'];
    expect(matchTargetModules(paths, ['q_proj'])).toEqual([paths[0], paths[3]]);
    expect(matchTargetModules(paths, ['self_attn.v_proj', 'model.layers.1.self_attn.q_proj'])).toEqual([paths[1], paths[3]]);
    expect(matchTargetModules(paths, ['proj'])).toEqual([]); // a suffix must be a whole name
    expect(matchTargetModules(paths, 'all-linear')).toEqual(paths);
    expect(matchTargetModules(paths, String.raw`model\.layers\.0\..*_proj`)).toEqual(paths.slice(0, 3)); // a string is a full-match regex
  });

  it('adapts exactly the named modules under their Hugging Face paths; a fresh adapter changes nothing', async () => {
    const weights = randomLlamaWeights(config, 1, { std: 0.3 });
    const ids = tf.tensor2d([[3, 1, 4, 1, 5, 9, 2, 6]], [1, 8], 'int32');
    const plain = await base(weights);
    const before = await plain.logits(ids).data();
    plain.dispose();
    const model = LlamaLoraModel.attach(await base(weights), { targetModules: ['q_proj', 'v_proj'], variant: 'lora', rank: 2, alpha: 4, seed: 9 }, { sha256: 'ab'.repeat(32) });
    expect([...model.modules().keys()]).toEqual([
      'model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj',
    ]);
    const layout = model.layout();
    expect(layout.variant).toBe('lora');
    expect(layout.baseModelSha256).toBe('ab'.repeat(32));
    expect(layout.modules[1]).toEqual({ path: 'model.layers.0.self_attn.v_proj', outFeatures: 8, inFeatures: 16, rank: 2, alpha: 4 });
    expect(model.trainableVariables()).toHaveLength(8); // A and B of four modules
    expect(maxAbsDiff(await model.forward(ids).data(), before)).toBe(0); // B = 0
    model.dispose();
    ids.dispose();
  });

  it('computes the base model with W + (alpha/r) B A on the adapted modules (float64 reference)', async () => {
    const weights = randomLlamaWeights(config, 2, { std: 0.3, normJitter: 0.3 });
    const model = LlamaLoraModel.attach(await base(weights), { targetModules: ['q_proj', 'v_proj', 'down_proj'], variant: 'lora', rank: 3, alpha: 6 });
    const merged = new Map(weights);
    const update = await model.extractUpdate();
    const factors = new Map<string, { A: Float32Array; B: Float32Array }>();
    let seed = 100;
    for (const m of model.layout().modules) {
      const A = seededNormalValues(m.rank * m.inFeatures, 0, 0.3, seed++);
      const B = seededNormalValues(m.outFeatures * m.rank, 0, 0.3, seed++);
      factors.set(m.path, { A, B });
      const name = `${m.path}.weight`;
      merged.set(name, mergeInto(weights.get(name)!, B, A, m.outFeatures, m.inFeatures, m.rank, m.alpha / m.rank));
    }
    model.loadGlobal({ layout: update.layout, factors });
    const ids = [5, 4, 3, 2, 1, 0, 36, 20];
    const got = await model.forward(tf.tensor2d([ids], [1, 8], 'int32')).data();
    const want = naiveLlamaLogits(config, merged, ids).flat();
    const scale = Math.max(...want.map(Math.abs));
    // Same float32 error budget as the base model test (llama.test.ts), plus one rank-3 product per layer.
    expect(maxAbsDiff(got, want)).toBeLessThan(1e-4 * scale);
    // The update carries PEFT-layout factors under the module paths.
    const out = await model.extractUpdate();
    expect(out.factors.get('model.layers.1.mlp.down_proj')!.B).toEqual(factors.get('model.layers.1.mlp.down_proj')!.B);
    expect(peftTensorNames('model.layers.1.mlp.down_proj').A).toBe('base_model.model.model.layers.1.mlp.down_proj.lora_A.weight');
    model.dispose();
  });

  it('gives the same logits and LoRA gradients with the naive matmul formulation (the benchmark baseline)', async () => {
    const weights = randomLlamaWeights(config, 6, { std: 0.3 });
    const results: Array<{ logits: Float32Array; grads: Float32Array[] }> = [];
    for (const naive of [false, true]) {
      const model = LlamaLoraModel.attach(await LlamaModel.build(config, (n) => weights.get(n)!, { naiveMatmuls: naive }),
        { targetModules: 'all-linear', variant: 'lora', rank: 2, seed: 3 });
      for (const m of model.modules().values()) m.setFactors({ B: seededNormalValues(m.outFeatures * m.rank, 0, 0.1, 8) });
      const inputs = tf.tensor2d([[1, 2, 3, 4, 5, 6]], [1, 6], 'int32');
      const targets = tf.tensor2d([[2, 3, 4, 5, 6, 7]], [1, 6], 'int32');
      const vars = model.trainableVariables();
      const { grads } = tf.variableGrads(() => model.loss({ inputs, targets }), vars);
      const logits = model.forward(inputs);
      results.push({ logits: await logits.data() as Float32Array, grads: await Promise.all(vars.map(async (v) => await grads[v.name]!.data() as Float32Array)) });
      tf.dispose([inputs, targets, logits, ...Object.values(grads)]);
      model.dispose();
    }
    // The same products in another order: float32 rounding only.
    expect(maxAbsDiff(results[0]!.logits, results[1]!.logits)).toBeLessThan(1e-5);
    results[0]!.grads.forEach((g, i) => expect(maxAbsDiff(g, results[1]!.grads[i]!)).toBeLessThan(1e-5));
  });

  it('refuses targets that match nothing, and a base being pre-trained', async () => {
    const weights = randomLlamaWeights(config, 3);
    const frozen = await base(weights);
    expect(() => LlamaLoraModel.attach(frozen, { targetModules: ['query'], variant: 'lora', rank: 2 })).toThrow(/match no module/);
    frozen.dispose();
    const trainable = await LlamaModel.build(config, (name) => weights.get(name)!, { trainable: true });
    expect(() => LlamaLoraModel.attach(trainable, { targetModules: ['q_proj'], variant: 'lora', rank: 2 })).toSatisfy((f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return isFedloraError(e, 'FL_ERR_INVALID_ARGUMENT');
      }
      return false;
    });
    trainable.dispose();
  });
});

describe.each(['cpu', 'wasm'])('training LoRA on a tiny text (%s)', (backend) => {
  beforeAll(async () => {
    expect(await tf.setBackend(backend)).toBe(true);
  });

  it('lowers the loss, trains only the factors, and leaks no tensor across steps', async () => {
    const byteConfig = parseLlamaConfig({ ...tinyConfigJson, vocab_size: 259, hidden_size: 32, intermediate_size: 48, max_position_embeddings: 64 });
    // std 0.2: with transformers' 0.02 the tiny lm_head caps every logit near 0, and no adapter can lower the loss much.
    const weights = randomLlamaWeights(byteConfig, 4, { std: 0.2 });
    const model = LlamaLoraModel.attach(await base(weights, byteConfig), { targetModules: ['q_proj', 'v_proj'], variant: 'lora', rank: 4, alpha: 8, seed: 1 });
    const tok = new ByteTokenizer();
    const ids = tok.encode('the cat sat on the mat. the cat sat on the mat. ').slice(0, 33);
    const inputs = tf.tensor2d([ids.slice(0, 32)], [1, 32], 'int32');
    const targets = tf.tensor2d([ids.slice(1, 33)], [1, 32], 'int32');
    const optimizer = tf.train.adam(0.05);
    const vars = model.trainableVariables();
    const step = async (): Promise<number> => {
      const loss = optimizer.minimize(() => model.loss({ inputs, targets }), true, vars)!;
      const v = (await loss.data())[0]!;
      loss.dispose();
      return v;
    };
    const first = await step(); // also creates Adam's slots
    const tensorsAfterFirst = tf.memory().numTensors;
    let last = first;
    for (let i = 0; i < 25; i++) last = await step();
    expect(tf.memory().numTensors).toBe(tensorsAfterFirst);
    // Random init gives ~ln(259) = 5.56 nats; a rank-4 adapter on q/v memorises 32 bytes well below it.
    expect(first).toBeGreaterThan(5);
    expect(last).toBeLessThan(first - 1);
    // The frozen base did not move: a fresh adapter with B = 0 gives the base logits again.
    const check = tf.tensor2d([ids.slice(0, 8)], [1, 8], 'int32');
    const plain = await base(weights, byteConfig);
    const want = await plain.logits(check).data();
    plain.dispose();
    for (const m of model.modules().values()) m.setFactors({ B: new Float32Array(m.outFeatures * m.rank) });
    expect(maxAbsDiff(await model.forward(check).data(), want)).toBe(0);
    tf.dispose([inputs, targets, check]);
    optimizer.dispose();
    model.dispose();
  });
});
