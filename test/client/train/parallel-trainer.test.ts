/**
 * Data-parallel training across worker threads (client/train/train-worker-pool.ts): the step of
 * N threads equals the step of one thread up to float32 summation order, with and without
 * DP-SGD; the DP noise is drawn once per step on the calling thread; worker errors surface as
 * coded errors; nothing leaks, in the calling thread or in the workers.
 *
 * Real components throughout: real worker threads (started through shared/worker-entry.ts), each
 * with its own tfjs backend and model, the real trainer and DP-SGD code.
 *
 * The tolerance, and why it is the right one. Both paths compute the same real-valued step; they
 * differ only in where float32 sums are cut: the single thread reduces a batch's examples inside
 * one matmul (x^T dy over all rows), the parallel step reduces each shard in float32 and adds the
 * shards' results in float64. Each float32 reduction of n terms carries a relative error of at
 * most ~n * 2^-24 of the sum of magnitudes (~2e-6 for the 32- to 64-term sums here), so
 * gradients agree to ~1e-6 relative. AdamW's first steps normalise the gradient (m / sqrt(v) is
 * ~sign(g)), so a parameter moves by ~lr per step whatever the gradient's size, and a gradient
 * component differing by relative 1e-6 moves its parameter differently by ~lr * 1e-6 at most,
 * except components whose true value is below the rounding noise (those can flip sign). We
 * therefore compare parameters after a few steps with an absolute bound of 1e-6 (lr * 1e-4 at
 * lr 1e-2; measured on the cpu backend: 2e-9 to 1.5e-8, i.e. a few float32 ulps of the ~0.1
 * factors): far above the rounding, and far below a real mistake, such as a shard counted twice,
 * a shard weighted by examples instead of tokens, or per-worker noise, which moves parameters by
 * ~lr (each test also checks that the parameters moved by much more than the bound).
 */
import * as tf from '@tensorflow/tfjs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededTestSource, type RandomSource } from '../../../privacy/random.js';
import { isFedloraError } from '../../../shared/errors.js';
import { chooseBackend } from '../../../client/backend.js';
import { loadBaseModel, type LoraBuild } from '../../../client/agent/base-model.js';
import { tableSource, tokenSource, type ExampleSource } from '../../../client/data/batches.js';
import type { LoraModel } from '../../../client/lora/lora-model.js';
import { parseLlamaConfig } from '../../../client/models/llama-config.js';
import { randomLlamaWeights } from '../../../client/models/llama-init.js';
import { llamaTensorShapes } from '../../../client/models/llama-names.js';
import { MlpClassifier } from '../../../client/models/mlp.js';
import { MLP_MODEL_TYPE, mlpTensorShapes, type MlpConfig } from '../../../client/models/mlp-config.js';
import { train, type TrainOptions, type TrainResult } from '../../../client/train/trainer.js';
import { TrainWorkerPool, type BaseSpec } from '../../../client/train/train-worker-pool.js';
import { digitsParts, type DigitsParts } from '../digits.js';
import { tinyConfigJson, writeCheckpoint } from '../llama-fixtures.js';
import { maxAbsDiff, testValues } from '../lora/reference.js';

type Variant = 'lora' | 'ffa' | 'fedsb';

let digits: DigitsParts;
const mlpConfig: MlpConfig = { model_type: MLP_MODEL_TYPE, input_size: 64, hidden_sizes: [16], num_labels: 10, hidden_act: 'relu' };
const mlpWeights = new Map<string, Float32Array>();
const mlpBase: BaseSpec = { kind: 'mlp', checkpoint: { config: mlpConfig, weights: mlpWeights, sha256: 'test' } };

beforeAll(async () => {
  await chooseBackend({ backend: 'cpu' });
  digits = await digitsParts();
  let k = 0;
  for (const [name, shape] of mlpTensorShapes(mlpConfig)) {
    const n = shape.reduce((a, b) => a * b, 1);
    mlpWeights.set(name, name === 'input_norm.std' ? new Float32Array(n).fill(8) : name === 'input_norm.mean' ? new Float32Array(n).fill(4) : testValues(n, 100 + k++).map((v) => v * 0.3));
  }
});

function mlpBuild(variant: Variant): LoraBuild {
  return { variant, rank: 4, alpha: 8, seed: 0, modules: mlpConfig.hidden_sizes.map((_, i) => `layers.${i}`).concat('head') };
}

function mlpModel(variant: Variant): MlpClassifier {
  return MlpClassifier.fromCheckpoint({ config: mlpConfig, weights: mlpWeights, sha256: 'test' }, { variant, rank: 4, alpha: 8, seed: 0 });
}

async function factors(model: LoraModel): Promise<Float32Array> {
  const read = await Promise.all([...model.modules().values()].map((m) => m.readFactors('all')));
  return Float32Array.from(read.flatMap((f) => Object.values(f).flatMap((v) => [...v])));
}

/** A seeded source that counts the 32-bit words drawn from it (sampling and noise alike). */
function countingSource(seed: number): RandomSource & { words: number } {
  const inner = seededTestSource(seed);
  const counted = {
    words: 0,
    nextUint32(): number {
      counted.words += 1;
      return inner.nextUint32();
    },
    fillUint32(out: Uint32Array): void {
      counted.words += out.length;
      if (inner.fillUint32 !== undefined) inner.fillUint32(out);
      else for (let i = 0; i < out.length; i++) out[i] = inner.nextUint32();
    },
  };
  return counted;
}

/** Trains `model` on one thread, or on `pool` (begun for it and ended after). */
async function trainOn(model: LoraModel, source: ExampleSource, options: TrainOptions, pool?: TrainWorkerPool, build?: LoraBuild): Promise<TrainResult> {
  if (pool === undefined) return train(model, source, options);
  await pool.begin({ kind: 'build', lora: build! }, model);
  try {
    return await train(model, source, { ...options, parallel: pool });
  } finally {
    await pool.end();
  }
}

describe('data-parallel training (train worker pool)', () => {
  let pool: TrainWorkerPool;
  let source: ExampleSource;

  beforeAll(async () => {
    source = tableSource(digits.highTrain);
    pool = await TrainWorkerPool.start({ threads: 3, base: mlpBase, source });
  });
  afterAll(async () => {
    await pool?.close();
  });

  it.each(['lora', 'ffa', 'fedsb'] as const)('%s: 3 threads take the step of 1 thread (float32 tolerance), with gradient accumulation', async (variant) => {
    const options: TrainOptions = { batchSize: 30, gradAccumulation: 2, maxSteps: 3, lr: 1e-2, seed: 4 };
    const single = mlpModel(variant);
    const multi = mlpModel(variant);
    const start = await factors(single);
    const a = await trainOn(single, source, options);
    const b = await trainOn(multi, source, options, pool, mlpBuild(variant));
    const [fa, fb] = [await factors(single), await factors(multi)];
    expect(maxAbsDiff(fa, start)).toBeGreaterThan(1e-2); // it trained (3 steps of ~lr)
    expect(maxAbsDiff(fa, fb)).toBeLessThan(1e-6);
    a.losses.forEach((l, i) => expect(Math.abs(l - b.losses[i]!)).toBeLessThan(1e-5 * Math.max(1, Math.abs(l))));
    expect(b.examples).toBe(a.examples);
    single.dispose();
    multi.dispose();
  });

  it.each(['lora', 'fedsb'] as const)('%s with DP-SGD (ghost clipping, seeded noise): 3 threads = 1 thread, and the noise is drawn once per step', async (variant) => {
    const run = async (parallel: boolean): Promise<{ f: Float32Array; words: number; result: TrainResult }> => {
      const m = mlpModel(variant);
      const random = countingSource(7);
      const result = await trainOn(m, source, {
        batchSize: 40, maxSteps: 3, lr: 1e-2, dp: { noiseMultiplier: 1.1, clipNorm: 0.5, randomSource: random },
      }, parallel ? pool : undefined, mlpBuild(variant));
      const f = await factors(m);
      m.dispose();
      return { f, words: random.words, result };
    };
    const one = await run(false);
    const three = await run(true);
    // Sampling and noise drawn from the same seeded stream in the same amounts: noise added once
    // per step to the sum. Noise added in each of the 3 threads would draw 3x the noise words,
    // and the parameters would differ by ~lr, not by float32 rounding.
    expect(three.words).toBe(one.words);
    expect(maxAbsDiff(one.f, three.f)).toBeLessThan(1e-6);
    expect(three.result.dp!.unclippedFraction).toBeCloseTo(one.result.dp!.unclippedFraction, 12);
    expect(three.result.examples).toBe(one.result.examples);
  });

  it('microbatch clipping with per-factor bounds: 3 threads = 1 thread', async () => {
    const run = async (parallel: boolean): Promise<Float32Array> => {
      const m = mlpModel('lora');
      await trainOn(m, source, { batchSize: 24, maxSteps: 2, lr: 1e-2, dp: { noiseMultiplier: 0.8, clipNorm: { A: 0.3, B: 0.4 }, mode: 'microbatch', randomSource: seededTestSource(11) } },
        parallel ? pool : undefined, mlpBuild('lora'));
      const f = await factors(m);
      m.dispose();
      return f;
    };
    expect(maxAbsDiff(await run(false), await run(true))).toBeLessThan(1e-6);
  });

  it('the noise is added once: without it the parameters agree, with it the run matches only the once-noised single thread', async () => {
    // sigma large enough that noise dominates: a second draw per worker would move parameters by ~lr
    const run = async (parallel: boolean, sigma: number, seed: number): Promise<Float32Array> => {
      const m = mlpModel('lora');
      await trainOn(m, source, { batchSize: 40, maxSteps: 2, lr: 1e-2, dp: { noiseMultiplier: sigma, clipNorm: 0.5, randomSource: seededTestSource(seed) } }, parallel ? pool : undefined, mlpBuild('lora'));
      const f = await factors(m);
      m.dispose();
      return f;
    };
    const single = await run(false, 20, 3);
    expect(maxAbsDiff(single, await run(true, 20, 3))).toBeLessThan(1e-6);
    // another noise stream gives a visibly different result: the comparison above can fail
    expect(maxAbsDiff(single, await run(true, 20, 4))).toBeGreaterThan(1e-3);
  });

  it('leaks no tensor: flat on this thread across steps, and each worker back to its count after end()', async () => {
    const before = await pool.memory();
    const startHere = tf.memory().numTensors;
    const m = mlpModel('lora');
    await pool.begin({ kind: 'build', lora: mlpBuild('lora') }, m);
    const counts: number[] = [];
    await train(m, source, { batchSize: 16, gradAccumulation: 2, maxSteps: 5, lr: 1e-3, parallel: pool, onProgress: () => counts.push(tf.memory().numTensors) });
    expect(new Set(counts.slice(1)).size).toBe(1);
    // after a first run the workers hold their model (with the transposed frozen copies the first
    // backward pass makes, lora/frozen-matmul.ts); more runs, plain and DP, must add nothing
    const withModel = await pool.memory();
    await train(m, source, { batchSize: 16, maxSteps: 3, lr: 1e-3, parallel: pool });
    await train(m, source, { batchSize: 40, maxSteps: 2, lr: 1e-3, parallel: pool, dp: { noiseMultiplier: 1, clipNorm: 1, randomSource: seededTestSource(1) } });
    await train(m, source, { batchSize: 40, maxSteps: 2, lr: 1e-3, parallel: pool, dp: { noiseMultiplier: 1, clipNorm: 1, mode: 'microbatch', randomSource: seededTestSource(1) } });
    expect(await pool.memory()).toEqual(withModel);
    expect(await pool.end()).toEqual(before);
    m.dispose();
    expect(tf.memory().numTensors).toBe(startHere);
  });

  it('a worker error surfaces as a coded error: a model that does not fit the main one', async () => {
    const m = MlpClassifier.fromCheckpoint({ config: mlpConfig, weights: mlpWeights, sha256: 'test' }, { variant: 'lora', rank: 8, alpha: 16, seed: 0 });
    // the workers build rank 4; the main model's rank-8 factors do not fit them
    const err = await pool.begin({ kind: 'build', lora: mlpBuild('lora') }, m).catch((e: unknown) => e);
    expect(isFedloraError(err, 'FL_ERR_ADAPTER_LAYOUT')).toBe(true);
    expect((err as Error).message).toMatch(/train worker \d: LoRA module 'layers.0'/);
    // and a pool not begun for the model refuses to train it
    const e2 = await train(m, source, { maxSteps: 1, parallel: pool }).catch((e: unknown) => e);
    expect(isFedloraError(e2, 'FL_ERR_TRAINING')).toBe(true);
    m.dispose();
  });
});

describe('data-parallel training: start failures and the causal LM', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fedlora-parallel-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a worker that cannot load its base model fails start() with that coded error', async () => {
    const err = await TrainWorkerPool.start({ threads: 2, base: { kind: 'dir', modelDir: join(dir, 'missing') }, source: tableSource(digits.highTrain) }).catch((e: unknown) => e);
    expect(isFedloraError(err, 'FL_ERR_MODEL_CONFIG')).toBe(true);
    expect((err as Error).message).toMatch(/train worker 1: cannot read .*config\.json/);
  });

  it('llama with padded sequences of different lengths: 3 threads = 1 thread (shards weighted by counted tokens)', async () => {
    const modelDir = join(dir, 'llama');
    const config = parseLlamaConfig(tinyConfigJson);
    await writeCheckpoint(modelDir, tinyConfigJson, randomLlamaWeights(config, 3, { std: 0.2 }), llamaTensorShapes(config));
    const base = await loadBaseModel(modelDir);
    // lengths 3..17 tokens at seqLen 8: most examples padded, by different amounts
    const sequences = Array.from({ length: 24 }, (_, i) => Int32Array.from({ length: 3 + ((i * 7) % 15) }, (_, j) => (i * 5 + j * 3) % 37));
    const src = tokenSource(sequences, 8, 0);
    const build: LoraBuild = { variant: 'lora', rank: 4, alpha: 8, seed: 1, modules: ['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.1.self_attn.v_proj'] };
    const pool = await TrainWorkerPool.start({ threads: 3, base: { kind: 'dir', modelDir }, source: src });
    try {
      const options: TrainOptions = { batchSize: 12, maxSteps: 3, lr: 1e-2, seed: 2 };
      const single = await base.build(build);
      const multi = await base.build(build);
      const start = await factors(single);
      const a = await trainOn(single, src, options);
      const b = await trainOn(multi, src, options, pool, build);
      const [fa, fb] = [await factors(single), await factors(multi)];
      expect(maxAbsDiff(fa, start)).toBeGreaterThan(1e-2);
      expect(maxAbsDiff(fa, fb)).toBeLessThan(1e-6);
      a.losses.forEach((l, i) => expect(Math.abs(l - b.losses[i]!)).toBeLessThan(1e-5 * Math.max(1, Math.abs(l))));
      single.dispose();
      multi.dispose();
    } finally {
      await pool.close();
    }
  });
});
