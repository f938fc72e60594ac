import { createHash } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeSafetensorsFile } from '../../../shared/safetensors/index.js';
import { makeTensor } from '../../../shared/tensor.js';
import { chooseBackend } from '../../../client/backend.js';
import { tableSource } from '../../../client/data/batches.js';
import { readMlpCheckpoint, writeMlpCheckpoint } from '../../../client/models/mlp-checkpoint.js';
import { MLP_MODEL_TYPE, mlpTensorShapes, type MlpConfig } from '../../../client/models/mlp-config.js';
import { MlpClassifier } from '../../../client/models/mlp.js';
import { DenseMlp, pretrainMlp, saveDenseMlp } from '../../../client/pretrain/mlp.js';
import { evaluate } from '../../../client/train/evaluate.js';
import { train } from '../../../client/train/trainer.js';
import { digitsParts, type DigitsParts } from '../digits.js';
import { maxAbsDiff, testValues } from '../lora/reference.js';

let digits: DigitsParts;

beforeAll(async () => {
  await chooseBackend({ backend: 'wasm' });
  digits = await digitsParts();
});

const tinyConfig: MlpConfig = { model_type: MLP_MODEL_TYPE, input_size: 5, hidden_sizes: [4], num_labels: 3, hidden_act: 'relu' };

describe('mlp checkpoint', () => {
  it('writes and reads config.json + model.safetensors; identity is the SHA-256 of the weights file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedlora-mlp-'));
    const dense = new DenseMlp(tinyConfig, { mean: testValues(5, 1), std: new Float32Array(5).fill(2) }, 3);
    const sha = await saveDenseMlp(dense, dir);
    const ck = await readMlpCheckpoint(dir);
    expect(ck.config).toEqual(tinyConfig);
    expect(ck.sha256).toBe(sha);
    expect(sha).toBe(createHash('sha256').update(await readFile(join(dir, 'model.safetensors'))).digest('hex'));
    expect([...ck.weights.keys()].sort()).toEqual([...mlpTensorShapes(tinyConfig).keys()].sort());
    // a fresh LoRA model (B = 0) computes what the base computes
    for (const variant of ['lora', 'ffa', 'fedsb'] as const) {
      const model = MlpClassifier.fromCheckpoint(ck, { variant, rank: 2 });
      expect(model.layout().baseModelSha256).toBe(sha);
      expect(model.layout().modules.map((m) => m.path)).toEqual(['layers.0', 'head']);
      const x = tf.tensor2d(testValues(6 * 5, 2), [6, 5]);
      const [a, b] = [model.forward(x), dense.forward(x)];
      expect(maxAbsDiff(await a.data(), await b.data())).toBeLessThan(1e-5);
      tf.dispose([x, a, b]);
      model.dispose();
    }
    dense.dispose();
  });

  it('refuses a bad config, a missing or misshapen tensor, naming the file and the tensor', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedlora-mlp-bad-'));
    await expect(readMlpCheckpoint(dir)).rejects.toThrow(/FL_ERR_MODEL_CONFIG: cannot read .*config\.json/);
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...tinyConfig, num_labels: 1 }));
    await expect(readMlpCheckpoint(dir)).rejects.toThrow(/FL_ERR_MODEL_CONFIG: .*config\.json: num_labels/);
    const weights = new Map([...mlpTensorShapes(tinyConfig)].map(([name, shape]) => [name, new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(1)]));
    await writeMlpCheckpoint(dir, tinyConfig, weights);
    expect((await readMlpCheckpoint(dir)).weights.size).toBe(weights.size);
    const shapes = [...mlpTensorShapes(tinyConfig)];
    await writeSafetensorsFile(join(dir, 'model.safetensors'), shapes.filter(([n]) => n !== 'head.bias').map(([n, s]) => makeTensor(n, s, weights.get(n))));
    await expect(readMlpCheckpoint(dir)).rejects.toThrow(/FL_ERR_CHECKPOINT: .*model\.safetensors: tensor 'head\.bias' is missing/);
    await writeSafetensorsFile(join(dir, 'model.safetensors'), shapes.map(([n, s]) => (n === 'head.weight' ? makeTensor(n, [4, 3], new Float32Array(12)) : makeTensor(n, s, weights.get(n)))));
    await expect(readMlpCheckpoint(dir)).rejects.toThrow(/tensor 'head\.weight' is \[4, 3\], config\.json needs \[3, 4\]/);
  });
});

describe('mlp pre-training', () => {
  it('is reproducible from the seed: the same seed writes the same model.safetensors (same SHA-256), another seed another', async () => {
    const shaOf = async (seed: number): Promise<string> => {
      const { model } = await pretrainMlp(digits.lowTrain, { hiddenSizes: [8], numLabels: 10, epochs: 1, batchSize: 64, lr: 3e-3, seed });
      const dir = await mkdtemp(join(tmpdir(), 'fedlora-mlp-seed-'));
      const sha = await saveDenseMlp(model, dir);
      model.dispose();
      return sha;
    };
    const [a, b, c] = [await shaOf(7), await shaOf(7), await shaOf(8)];
    expect(a).toBe(b);
    expect(c).not.toBe(a);
  });
});

describe('mlp on digits', () => {
  it('pre-trains on labels 0-4, then LoRA learns 5-9 well above chance (real data, real training)', async () => {
    const { model: base, result } = await pretrainMlp(digits.lowTrain, { hiddenSizes: [32], numLabels: 10, epochs: 6, batchSize: 32, lr: 3e-3, seed: 0 });
    expect(result.losses.at(-1)!).toBeLessThan(result.losses[0]!);
    const baseLow = await evaluate(base, tableSource(digits.lowTest));
    // chance is 0.2 among five classes; the base model sees 0-4 only
    expect(baseLow.accuracy!).toBeGreaterThan(0.85);
    expect((await evaluate(base, tableSource(digits.highTest))).accuracy!).toBeLessThan(0.05);
    const dir = await mkdtemp(join(tmpdir(), 'fedlora-mlp-digits-'));
    await saveDenseMlp(base, dir);
    base.dispose();
    const model = await MlpClassifier.load(dir, { variant: 'lora', rank: 4, alpha: 8, seed: 1 });
    await train(model, tableSource(digits.highTrain), { epochs: 6, batchSize: 32, lr: 5e-3, seed: 1 });
    const high = await evaluate(model, tableSource(digits.highTest));
    // 10 outputs, labels 5-9 never seen by the base: chance 0.1 (0.2 among 5-9); LoRA reaches > 0.8
    expect(high.accuracy!).toBeGreaterThan(0.8);
    expect(high.examples).toBe(digits.highTest.labels.length);
    model.dispose();
  });
});
