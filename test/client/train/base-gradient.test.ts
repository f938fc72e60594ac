import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { seededTestSource } from '../../../privacy/random.js';
import { chooseBackend } from '../../../client/backend.js';
import { tableSource } from '../../../client/data/batches.js';
import { MlpClassifier } from '../../../client/models/mlp.js';
import { MLP_MODEL_TYPE, mlpDenseLayers, mlpTensorShapes, type MlpConfig } from '../../../client/models/mlp-config.js';
import { baseWeightGradients } from '../../../client/train/base-gradient.js';
import { digitsParts, type DigitsParts } from '../digits.js';
import { testValues } from '../lora/reference.js';

let digits: DigitsParts;
const config: MlpConfig = { model_type: MLP_MODEL_TYPE, input_size: 64, hidden_sizes: [12, 8], num_labels: 10, hidden_act: 'tanh' };
const weights = new Map<string, Float32Array>();

beforeAll(async () => {
  await chooseBackend({ backend: 'cpu' });
  digits = await digitsParts();
  let k = 0;
  for (const [name, shape] of mlpTensorShapes(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    weights.set(name, name === 'input_norm.std' ? new Float32Array(n).fill(8) : name === 'input_norm.mean' ? new Float32Array(n).fill(4) : testValues(n, 400 + k++).map((v) => v * 0.4));
  }
});

/** dL/dW for every layer with W a tf variable (the naive way), L = summed cross-entropy. */
async function referenceGradients(idx: number[]): Promise<Map<string, Float32Array>> {
  const layers = mlpDenseLayers(config).map((l) => ({
    path: l.path,
    W: tf.variable(tf.tensor2d(weights.get(`${l.path}.weight`)!, [l.outFeatures, l.inFeatures])),
    b: tf.tensor1d(weights.get(`${l.path}.bias`)!),
  }));
  const batch = tableSource(digits.highTrain).batch(idx);
  const { grads, value } = tf.variableGrads(() => {
    let h: tf.Tensor = tf.div(tf.sub(batch.inputs, 4), 8);
    layers.forEach((l, i) => {
      h = tf.add(tf.matMul(h as tf.Tensor2D, l.W as tf.Tensor2D, false, true), l.b);
      if (i < layers.length - 1) h = tf.tanh(h);
    });
    const logp = tf.logSoftmax(h);
    return tf.neg(tf.sum(tf.mul(tf.oneHot(tf.cast(batch.targets, 'int32') as tf.Tensor1D, 10), logp))) as tf.Scalar;
  }, layers.map((l) => l.W));
  const out = new Map(await Promise.all(layers.map(async (l) => [l.path, await grads[l.W.name]!.data() as Float32Array] as const)));
  tf.dispose([value, ...Object.values(grads), ...layers.flatMap((l) => [l.W, l.b]), batch.inputs, batch.targets]);
  return out;
}

function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) { num += (a[i]! - b[i]!) ** 2; den += b[i]! ** 2; }
  return Math.sqrt(num / den);
}

describe('gradient w.r.t. the frozen base weights (Fed-SB initialisation)', () => {
  it('equals tf\'s gradient with W0 as a variable, every layer including the first, in chunks', async () => {
    const model = MlpClassifier.fromCheckpoint({ config, weights }, { variant: 'fedsb', rank: 2 });
    const idx = Array.from({ length: 40 }, (_, i) => 3 * i);
    await baseWeightGradients(model, tableSource(digits.highTrain), idx.slice(0, 2)); // makes the layers' lazy transposed copies
    const before = tf.memory().numTensors;
    const got = await baseWeightGradients(model, tableSource(digits.highTrain), idx, { chunk: 16 });
    expect(tf.memory().numTensors).toBe(before);
    const want = await referenceGradients(idx);
    expect([...got.gradients.keys()]).toEqual(['layers.0', 'layers.1', 'head']);
    // float32 sums over 40 examples in a different order: relative error ~1e-7
    for (const [path, g] of got.gradients) expect(relErr(g, want.get(path)!)).toBeLessThan(1e-5);
    expect(got.examples).toBe(40);
    model.dispose();
  });

  it('with DP: clipping bounds the sum, a large bound and no noise change nothing, noise is reproducible only from its source', async () => {
    const model = MlpClassifier.fromCheckpoint({ config, weights }, { variant: 'fedsb', rank: 2 });
    const src = tableSource(digits.highTrain);
    const idx = Array.from({ length: 20 }, (_, i) => i);
    const plain = await baseWeightGradients(model, src, idx);
    const loose = await baseWeightGradients(model, src, idx, { dp: { clipNorm: 1e9, noiseMultiplier: 0 } });
    for (const [p, g] of plain.gradients) expect(relErr(loose.gradients.get(p)!, g)).toBeLessThan(1e-6);
    expect(loose.dp).toEqual({ q: 1, steps: 1, noiseMultiplier: 0, clipNorm: 1e9 });
    const tight = await baseWeightGradients(model, src, idx, { dp: { clipNorm: 0.01, noiseMultiplier: 0 } });
    const norm = Math.sqrt([...tight.gradients.values()].reduce((s, g) => s + g.reduce((t, v) => t + v * v, 0), 0));
    expect(norm).toBeLessThanOrEqual(20 * 0.01 * (1 + 1e-6));
    const noisy = async (seed: number): Promise<Float32Array> => (await baseWeightGradients(model, src, idx, { dp: { clipNorm: 0.01, noiseMultiplier: 1, randomSource: seededTestSource(seed) } })).gradients.get('head')!;
    const [a, b, c] = [await noisy(1), await noisy(1), await noisy(2)];
    expect([...a]).toEqual([...b]);
    expect([...a]).not.toEqual([...c]);
    // the noise has std sigma C = 0.01 per coordinate: the head gradient moves by about that
    const diff = Math.sqrt(a.reduce((s, v, i) => s + (v - tight.gradients.get('head')![i]!) ** 2, 0) / a.length);
    expect(diff).toBeGreaterThan(0.005);
    expect(diff).toBeLessThan(0.02);
    model.dispose();
  });
});
