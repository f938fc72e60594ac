import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { chooseBackend } from '../../../client/backend.js';
import { tableSource, tokenSource } from '../../../client/data/batches.js';
import type { Batch, TrainableModel } from '../../../client/lora/lora-model.js';
import { MlpClassifier } from '../../../client/models/mlp.js';
import { MLP_MODEL_TYPE, mlpTensorShapes, type MlpConfig } from '../../../client/models/mlp-config.js';
import { AdamW } from '../../../client/train/adamw.js';
import { evaluate } from '../../../client/train/evaluate.js';
import { tokenCrossEntropy } from '../../../client/train/losses.js';
import { learningRateAt } from '../../../client/train/schedule.js';
import { train, type TrainProgress } from '../../../client/train/trainer.js';
import { digitsParts, type DigitsParts } from '../digits.js';
import { maxAbsDiff, testValues } from '../lora/reference.js';

let digits: DigitsParts;

beforeAll(async () => {
  await chooseBackend({ backend: 'cpu' });
  digits = await digitsParts();
});

/** A small random mlp base for the 64 digit features (weights made in memory). */
function smallMlp(variant: 'lora' | 'ffa' | 'fedsb' = 'lora', seed = 0): MlpClassifier {
  const config: MlpConfig = { model_type: MLP_MODEL_TYPE, input_size: 64, hidden_sizes: [16], num_labels: 10, hidden_act: 'relu' };
  const weights = new Map<string, Float32Array>();
  let k = 0;
  for (const [name, shape] of mlpTensorShapes(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    weights.set(name, name === 'input_norm.std' ? new Float32Array(n).fill(8) : name === 'input_norm.mean' ? new Float32Array(n).fill(4) : testValues(n, 100 + k++).map((v) => v * 0.3));
  }
  return MlpClassifier.fromCheckpoint({ config, weights }, { variant, rank: 4, alpha: 8, seed });
}

async function factors(model: MlpClassifier): Promise<Float32Array> {
  const read = await Promise.all([...model.modules().values()].map((m) => m.readFactors('all')));
  return Float32Array.from(read.flatMap((f) => Object.values(f).flatMap((v) => [...v])));
}

describe('trainer', () => {
  it('is deterministic for a seed on one backend, and depends on the seed', async () => {
    const run = async (seed: number): Promise<Float32Array> => {
      const m = smallMlp();
      await train(m, tableSource(digits.highTrain), { epochs: 1, batchSize: 32, lr: 1e-2, seed, maxSteps: 8 });
      const f = factors(m);
      m.dispose();
      return f;
    };
    const [a, b, c] = [await run(5), await run(5), await run(6)];
    expect(maxAbsDiff(a, b)).toBe(0);
    expect(maxAbsDiff(a, c)).toBeGreaterThan(1e-4);
  });

  it('keeps tf.memory().numTensors flat across training steps, and back to the start after dispose', async () => {
    const start = tf.memory().numTensors;
    const m = smallMlp();
    const counts: number[] = [];
    await train(m, tableSource(digits.highTrain), {
      epochs: 1, batchSize: 16, gradAccumulation: 2, lr: 1e-3, maxSteps: 6,
      onProgress: () => counts.push(tf.memory().numTensors),
    });
    // step 1 creates AdamW's moment variables; from then on nothing may accumulate
    expect(counts).toHaveLength(6);
    expect(new Set(counts.slice(1)).size).toBe(1);
    // when train returns, AdamW's two moments per trainable variable are freed too
    expect(tf.memory().numTensors).toBe(counts[0]! - 2 * m.trainableVariables().length);
    m.dispose();
    expect(tf.memory().numTensors).toBe(start);
  });

  it('gradient accumulation of two half batches gives the step of one full batch', async () => {
    const a = smallMlp();
    const b = smallMlp();
    await train(a, tableSource(digits.highTrain), { batchSize: 32, gradAccumulation: 1, maxSteps: 1, lr: 1e-2, seed: 3 });
    await train(b, tableSource(digits.highTrain), { batchSize: 16, gradAccumulation: 2, maxSteps: 1, lr: 1e-2, seed: 3 });
    // same 32 examples, mean gradient summed in a different order: float32 rounding only
    expect(maxAbsDiff(await factors(a), await factors(b))).toBeLessThan(1e-6);
    a.dispose();
    b.dispose();
  });

  it('reports progress per optimizer step and rejects bad options', async () => {
    const m = smallMlp();
    const seen: TrainProgress[] = [];
    const r = await train(m, tableSource(digits.highTrain), { epochs: 2, batchSize: 200, gradAccumulation: 2, lr: 1e-3, onProgress: (p) => seen.push(p) });
    const perEpoch = Math.ceil(Math.ceil(digits.highTrain.labels.length / 200) / 2);
    expect(r.steps).toBe(2 * perEpoch);
    expect(seen.map((p) => p.step)).toEqual(Array.from({ length: r.steps }, (_, i) => i + 1));
    expect(seen.at(-1)!.examples).toBe(2 * digits.highTrain.labels.length);
    expect(seen.at(-1)!.epoch).toBe(2);
    await expect(train(m, tableSource(digits.highTrain), { batchSize: 0 })).rejects.toThrow(/FL_ERR_INVALID_ARGUMENT: batchSize must be a positive integer, got 0/);
    await expect(train(m, tableSource(digits.highTrain), { lr: -1, maxSteps: 1 })).rejects.toThrow(/learning rate must be a positive number/);
    m.dispose();
  });
});

describe('trainer and schedule together', () => {
  it('each step uses the scheduled learning rate (warmup then cosine over the run)', async () => {
    const m = smallMlp();
    const lrs: number[] = [];
    const r = await train(m, tableSource(digits.highTrain), { epochs: 1, batchSize: 64, lr: 0.01, schedule: 'cosine', warmupSteps: 2, onProgress: (p) => lrs.push(p.lr) });
    const expected = Array.from({ length: r.steps }, (_, s) => learningRateAt(s, { lr: 0.01, kind: 'cosine', warmupSteps: 2, totalSteps: r.steps }));
    expect(lrs).toEqual(expected);
    expect(lrs[0]).toBeCloseTo(0.005, 12);
    expect(lrs.at(-1)!).toBeLessThan(0.001);
    m.dispose();
  });
});

describe('AdamW', () => {
  it('matches torch.optim.AdamW arithmetic on a hand-followed sequence (float64 reference)', async () => {
    const p = tf.variable(tf.tensor1d([1, -2]));
    const opt = new AdamW({ weightDecay: 0.1, beta1: 0.9, beta2: 0.99, epsilon: 1e-8 });
    const gradsSeq = [[0.5, -1], [0.25, 2], [-1, 0.5]];
    const lrs = [0.1, 0.05, 0.02];
    // reference, as torch.optim.AdamW: p *= 1 - lr wd; m, v moments; p -= lr mhat / (sqrt(vhat) + eps)
    const ref = [1, -2];
    const m = [0, 0];
    const v = [0, 0];
    gradsSeq.forEach((g, t) => {
      for (let i = 0; i < 2; i++) {
        ref[i] = ref[i]! * (1 - lrs[t]! * 0.1);
        m[i] = 0.9 * m[i]! + 0.1 * g[i]!;
        v[i] = 0.99 * v[i]! + 0.01 * g[i]! ** 2;
        const mh = m[i]! / (1 - 0.9 ** (t + 1));
        const vh = v[i]! / (1 - 0.99 ** (t + 1));
        ref[i] = ref[i]! - (lrs[t]! * mh) / (Math.sqrt(vh) + 1e-8);
      }
      const gt = tf.tensor1d(g);
      opt.applyGradients([p], [gt], lrs[t]!);
      gt.dispose();
    });
    // float32 arithmetic on values of order 1 over three steps
    expect(maxAbsDiff(await p.data(), ref)).toBeLessThan(1e-6);
    expect(opt.steps).toBe(3);
    opt.dispose();
    p.dispose();
  });
});

describe('learning-rate schedule', () => {
  it('warms up linearly, then decays by a half cosine or a line to lr * minRatio', () => {
    const o = { lr: 1, warmupSteps: 4, totalSteps: 14, minRatio: 0.1 };
    expect([0, 1, 2, 3].map((s) => learningRateAt(s, { ...o, kind: 'cosine' }))).toEqual([0.25, 0.5, 0.75, 1]);
    expect(learningRateAt(4, { ...o, kind: 'cosine' })).toBe(1);
    expect(learningRateAt(9, { ...o, kind: 'cosine' })).toBeCloseTo(0.1 + 0.9 * 0.5, 12);
    expect(learningRateAt(14, { ...o, kind: 'cosine' })).toBeCloseTo(0.1, 12);
    expect(learningRateAt(9, { ...o, kind: 'linear' })).toBeCloseTo(0.55, 12);
    expect(learningRateAt(100, { ...o, kind: 'constant' })).toBe(1);
  });
});

/** A bigram "language model": logits = E[token], with E [V, V] trainable. */
class Bigram implements TrainableModel {
  readonly task = 'causal-lm' as const;
  readonly table: tf.Variable;
  constructor(values: Float32Array, readonly vocab: number) {
    this.table = tf.variable(tf.tensor2d(values, [vocab, vocab]));
  }
  trainableVariables(): tf.Variable[] { return [this.table]; }
  forward(inputs: tf.Tensor): tf.Tensor { return tf.gather(this.table, tf.cast(inputs, 'int32')); }
  lossPerExample(batch: Batch): tf.Tensor1D { return tf.tidy(() => tokenCrossEntropy(this.forward(batch.inputs), batch.targets, batch.mask).perExample); }
  loss(batch: Batch): tf.Scalar { return tf.tidy(() => { const c = tokenCrossEntropy(this.forward(batch.inputs), batch.targets, batch.mask); return tf.div(c.sum, c.count) as tf.Scalar; }); }
}

describe('evaluate', () => {
  it('perplexity of a causal LM is exp of the mean next-token loss over counted tokens (float64 reference)', async () => {
    const V = 5;
    const values = testValues(V * V, 9);
    const model = new Bigram(values, V);
    const seqs = [Int32Array.of(0, 1, 2, 3), Int32Array.of(4, 4), Int32Array.of(2, 0, 1)];
    const ev = await evaluate(model, tokenSource(seqs, 3, 0), 2);
    // reference: sum over every (prev, next) pair of -log softmax(E[prev])[next]
    let nll = 0;
    let count = 0;
    for (const s of seqs) {
      for (let t = 0; t + 1 < s.length; t++) {
        const row = Array.from(values.subarray(s[t]! * V, (s[t]! + 1) * V));
        const lse = Math.log(row.reduce((a, b) => a + Math.exp(b), 0));
        nll += lse - row[s[t + 1]!]!;
        count += 1;
      }
    }
    expect(ev.tokens).toBe(count);
    expect(ev.loss).toBeCloseTo(nll / count, 5);
    expect(ev.perplexity).toBeCloseTo(Math.exp(nll / count), 4);
    model.table.dispose();
  });
});
