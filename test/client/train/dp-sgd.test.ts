import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { seededTestSource } from '../../../privacy/random.js';
import type { Adapter, AdapterLayout } from '../../../shared/adapter.js';
import { chooseBackend } from '../../../client/backend.js';
import { tableSource, type ExampleSource } from '../../../client/data/batches.js';
import { LoraDense } from '../../../client/lora/lora-dense.js';
import { extractUpdateOf, layoutOf, loadGlobalInto, trainableVariablesOf, type Batch, type LoraModel } from '../../../client/lora/lora-model.js';
import { MlpClassifier } from '../../../client/models/mlp.js';
import { MLP_MODEL_TYPE, mlpTensorShapes, type MlpConfig } from '../../../client/models/mlp-config.js';
import { clippedGradientSum, clipSpecFor } from '../../../client/train/dp-sgd.js';
import { clipSensitivity } from '../../../privacy/dp-sgd.js';
import { train } from '../../../client/train/trainer.js';
import { DenseMlp } from '../../../client/pretrain/mlp.js';
import { digitsParts, type DigitsParts } from '../digits.js';
import { testValues } from '../lora/reference.js';

let digits: DigitsParts;

beforeAll(async () => {
  await chooseBackend({ backend: 'cpu' });
  digits = await digitsParts();
});

function smallMlp(variant: 'lora' | 'ffa' | 'fedsb'): MlpClassifier {
  const config: MlpConfig = { model_type: MLP_MODEL_TYPE, input_size: 64, hidden_sizes: [12], num_labels: 10, hidden_act: 'tanh' };
  const weights = new Map<string, Float32Array>();
  let k = 0;
  for (const [name, shape] of mlpTensorShapes(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    weights.set(name, name === 'input_norm.std' ? new Float32Array(n).fill(8) : name === 'input_norm.mean' ? new Float32Array(n).fill(4) : testValues(n, 200 + k++).map((v) => v * 0.3));
  }
  const model = MlpClassifier.fromCheckpoint({ config, weights }, { variant, rank: 3, alpha: 6, seed: 4 });
  // non-zero trainable factors, so every factor has a gradient
  for (const m of model.modules().values()) {
    const f = LoraDense.initialFactors(m.variant, m.inFeatures, m.outFeatures, m.rank, 0); // the keys and lengths of every factor
    m.setFactors(Object.fromEntries(Object.entries(f).map(([name, v], i) => [name, testValues(v.length, 300 + i).map((x) => x * 0.4)])));
  }
  return model;
}

function relativeDiff(a: Float64Array[], b: Float64Array[]): number {
  let num = 0;
  let den = 0;
  a.forEach((x, i) => x.forEach((v, j) => { num += (v - b[i]![j]!) ** 2; den += v * v; }));
  return Math.sqrt(num / den);
}

/** A bound half-way between two middle norms, so no example sits on the bound (where float32 decides). */
function median(xs: number[]): number {
  const s = [...xs].sort((p, q) => p - q);
  const k = Math.floor(s.length / 2);
  return (s[k - 1]! + s[k]!) / 2;
}

describe('DP-SGD clipped gradient sums', () => {
  for (const variant of ['lora', 'ffa', 'fedsb'] as const) {
    it(`${variant}: ghost clipping gives the same norms and clipped sum as per-example micro-batches`, async () => {
      const model = smallMlp(variant);
      const src = tableSource(digits.highTrain);
      const idx = Array.from({ length: 24 }, (_, i) => i * 7);
      const probe = await clippedGradientSum(model, src, idx, 1e9, 'microbatch');
      const C = median(probe.norms); // about half the examples get clipped
      const micro = await clippedGradientSum(model, src, idx, C, 'microbatch');
      const ghost = await clippedGradientSum(model, src, idx, C, 'ghost', 10); // chunks of 10: 3 passes
      ghost.norms.forEach((n, i) => expect(Math.abs(n - micro.norms[i]!) / micro.norms[i]!).toBeLessThan(1e-4));
      expect(ghost.unclipped).toBe(micro.unclipped);
      expect(micro.unclipped).toBeGreaterThan(0);
      expect(micro.unclipped).toBeLessThan(idx.length);
      // float32 gradients summed in a different order: relative error of a few 1e-7
      expect(relativeDiff(ghost.sums, micro.sums)).toBeLessThan(1e-5);
      expect(ghost.lossSum).toBeCloseTo(micro.lossSum, 3);
      model.dispose();
    });
  }

  it('per-factor bounds (DP-LoRA: A and B clipped separately): ghost equals micro-batches, each factor within its bound', async () => {
    const model = smallMlp('lora');
    const src = tableSource(digits.highTrain);
    const idx = Array.from({ length: 16 }, (_, i) => i * 5);
    const clip = { A: 0.02, B: 0.05 };
    const micro = await clippedGradientSum(model, src, idx, clip, 'microbatch');
    const ghost = await clippedGradientSum(model, src, idx, clip, 'ghost');
    expect(relativeDiff(ghost.sums, micro.sums)).toBeLessThan(1e-5);
    expect(ghost.unclipped).toBe(micro.unclipped);
    expect(micro.unclipped).toBeLessThan(idx.length); // the bounds bite
    // variables come module by module as [A^T, B^T]: the A sums and the B sums are each within k C_g
    const groupNorm = (sums: Float64Array[], parity: number): number => Math.sqrt(sums.filter((_, i) => i % 2 === parity).reduce((t, a) => t + a.reduce((u, v) => u + v * v, 0), 0));
    expect(groupNorm(ghost.sums, 0)).toBeLessThanOrEqual(16 * 0.02 * (1 + 1e-6));
    expect(groupNorm(ghost.sums, 1)).toBeLessThanOrEqual(16 * 0.05 * (1 + 1e-6));
    expect(clipSensitivity(clipSpecFor(model, clip))).toBeCloseTo(Math.hypot(0.02, 0.05), 12);
    await expect(clippedGradientSum(model, src, idx, { B: 1 })).rejects.toThrow(/FL_ERR_PRIVACY_ARGUMENT: per-factor clipping: the model trains A but no bound for A/);
    await expect(clippedGradientSum(model, src, idx, { A: 1, B: 1, R: 1 })).rejects.toThrow(/a bound for R was given but the model trains only A, B/);
    model.dispose();
  });

  it('bounds each example: a clipped single example has norm min(norm, C); a clipped sum of k examples at most k C', async () => {
    const model = smallMlp('lora');
    const src = tableSource(digits.highTrain);
    const norm = (sums: Float64Array[]): number => Math.sqrt(sums.reduce((s, a) => s + a.reduce((t, v) => t + v * v, 0), 0));
    const one = await clippedGradientSum(model, src, [5], 1e9, 'ghost');
    const raw = one.norms[0]!;
    expect(norm(one.sums)).toBeCloseTo(raw, 4);
    const clipped = await clippedGradientSum(model, src, [5], raw / 4, 'ghost');
    expect(norm(clipped.sums)).toBeCloseTo(raw / 4, 5);
    const many = await clippedGradientSum(model, src, Array.from({ length: 30 }, (_, i) => i), 0.05, 'ghost');
    expect(Math.max(...many.norms)).toBeGreaterThan(0.05);
    expect(norm(many.sums)).toBeLessThanOrEqual(30 * 0.05 * (1 + 1e-6));
    model.dispose();
  });
});

/** One LoRA layer over sequences [N, T, n]; each example's loss is the sum of squares of its outputs. */
class SequenceLora implements LoraModel {
  readonly task = 'causal-lm' as const;
  readonly layer = new LoraDense({ path: 'proj', variant: 'lora', inFeatures: 16, outFeatures: 12, rank: 4, alpha: 8, weight: testValues(12 * 16, 1), seed: 2 });
  constructor() {
    this.layer.setFactors({ A: testValues(4 * 16, 3), B: testValues(12 * 4, 4) });
  }
  modules(): ReadonlyMap<string, LoraDense> { return new Map([['proj', this.layer]]); }
  layout(): AdapterLayout { return layoutOf(this.modules()); }
  extractUpdate(): Promise<Adapter> { return extractUpdateOf(this.modules(), this.layout()); }
  loadGlobal(adapter: Adapter): void { loadGlobalInto(this.modules(), adapter); }
  trainableVariables(): tf.Variable[] { return trainableVariablesOf(this.modules()); }
  forward(inputs: tf.Tensor): tf.Tensor { return this.layer.forward(inputs); }
  lossPerExample(batch: Batch): tf.Tensor1D { return tf.tidy(() => tf.sum(tf.square(tf.sub(this.forward(batch.inputs), batch.targets)), [1, 2]) as tf.Tensor1D); }
  loss(batch: Batch): tf.Scalar { return tf.tidy(() => tf.mean(this.lossPerExample(batch)) as tf.Scalar); }
  dispose(): void { this.layer.dispose(); }
}

function sequenceSource(n: number, T: number): ExampleSource {
  const x = testValues(n * T * 16, 50);
  const y = testValues(n * T * 12, 51);
  return {
    size: n,
    batch(indices) {
      const xs = new Float32Array(indices.length * T * 16);
      const ys = new Float32Array(indices.length * T * 12);
      for (let i = 0; i < indices.length; i++) {
        xs.set(x.subarray(indices[i]! * T * 16, (indices[i]! + 1) * T * 16), i * T * 16);
        ys.set(y.subarray(indices[i]! * T * 12, (indices[i]! + 1) * T * 12), i * T * 12);
      }
      return { inputs: tf.tensor3d(xs, [indices.length, T, 16]), targets: tf.tensor3d(ys, [indices.length, T, 12]) };
    },
  };
}

describe('DP-SGD on sequence inputs (several rows per example)', () => {
  for (const T of [3, 9]) {
    it(`T = ${T}: ghost norms and clipped sum equal the micro-batch ones`, async () => {
      const model = new SequenceLora();
      const src = sequenceSource(10, T);
      const idx = Array.from({ length: 10 }, (_, i) => i);
      const probe = await clippedGradientSum(model, src, idx, 1e9, 'microbatch');
      const C = median(probe.norms);
      const micro = await clippedGradientSum(model, src, idx, C, 'microbatch');
      const ghost = await clippedGradientSum(model, src, idx, C, 'ghost');
      ghost.norms.forEach((n, i) => expect(Math.abs(n - micro.norms[i]!) / micro.norms[i]!).toBeLessThan(1e-4));
      expect(relativeDiff(ghost.sums, micro.sums)).toBeLessThan(1e-5);
      model.dispose();
    });
  }
});

describe('DP-SGD on a model without LoRA modules', () => {
  it('trains with micro-batches; ghost clipping refuses with a clear error', async () => {
    const config: MlpConfig = { model_type: MLP_MODEL_TYPE, input_size: 64, hidden_sizes: [8], num_labels: 10, hidden_act: 'relu' };
    const dense = new DenseMlp(config, { mean: new Float32Array(64).fill(4), std: new Float32Array(64).fill(8) }, 1);
    const src = tableSource(digits.highTrain);
    const before = Float32Array.from(await dense.trainableVariables()[0]!.data());
    const r = await train(dense, src, { maxSteps: 2, batchSize: 16, dp: { noiseMultiplier: 1, clipNorm: 1, mode: 'microbatch', randomSource: seededTestSource(5) } });
    expect(r.dp!.steps).toBe(2);
    expect([...await dense.trainableVariables()[0]!.data()]).not.toEqual([...before]);
    await expect(clippedGradientSum(dense, src, [0, 1], 1, 'ghost')).rejects.toThrow(/FL_ERR_TRAINING: ghost clipping needs a model with LoRA modules; use the microbatch mode/);
    dense.dispose();
  });
});

describe('DP-SGD training', () => {
  it('reports steps and q for the accountant, is reproducible with a seeded source, and leaks no tensors', async () => {
    const run = async (seed: number): Promise<{ factors: Float32Array; result: Awaited<ReturnType<typeof train>>; counts: number[] }> => {
      const model = smallMlp('ffa');
      const counts: number[] = [];
      const result = await train(model, tableSource(digits.highTrain), {
        epochs: 1, batchSize: 90, lr: 1e-2, maxSteps: 4, seed: 1,
        dp: { noiseMultiplier: 1.1, clipNorm: 0.5, randomSource: seededTestSource(seed) },
        onProgress: () => counts.push(tf.memory().numTensors),
      });
      const factors = Float32Array.from((await Promise.all([...model.modules().values()].map((m) => m.readFactors('trainable')))).flatMap((f) => [...f.B!]));
      model.dispose();
      return { factors, result, counts };
    };
    const a = await run(1);
    const b = await run(1);
    const c = await run(2);
    const n = digits.highTrain.labels.length;
    expect(a.result.dp).toMatchObject({ steps: 4, q: 90 / n, noiseMultiplier: 1.1, clipNorm: 0.5, expectedBatchSize: 90 });
    expect(a.result.steps).toBe(4);
    expect([...a.factors]).toEqual([...b.factors]);
    expect([...a.factors]).not.toEqual([...c.factors]);
    expect(new Set(a.counts.slice(1)).size).toBe(1);
    // Poisson sampling: about q n = 90 examples per step
    expect(a.result.examples / 4).toBeGreaterThan(60);
    expect(a.result.examples / 4).toBeLessThan(120);
  });

  it('an epoch is 1/q steps by default', async () => {
    const model = smallMlp('fedsb');
    const n = digits.highTrain.labels.length;
    const r = await train(model, tableSource(digits.highTrain), { epochs: 1, batchSize: Math.ceil(n / 3), lr: 1e-3, dp: { noiseMultiplier: 0.8, clipNorm: 1, randomSource: seededTestSource(3) } });
    expect(r.dp!.steps).toBe(Math.round(n / Math.ceil(n / 3)));
    model.dispose();
  });
});
