/**
 * The llama model with its fused ops (client/kernels/, issue 13) on against off, on the cpu
 * backend, where the fused ops run their tfjs-op forms with their hand-written gradients: the loss
 * and every trainable gradient must agree within 1e-4 relative (the rule). The WGSL forms
 * are checked against the same compositions on the GPU by tools/gpu/kernels-check.ts.
 */
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FUSED_KERNELS_ENV } from '../../client/kernels/fused-adamw.js';
import { fusedOpsMode } from '../../client/kernels/webgpu-program.js';
import { parseLlamaConfig } from '../../client/models/llama-config.js';
import { randomLlamaWeights } from '../../client/models/llama-init.js';
import { LlamaLoraModel } from '../../client/models/llama-lora.js';
import { LlamaModel } from '../../client/models/llama.js';
import { seededNormalValues } from '../../client/lora/seeded-draws.js';
import { tinyConfigJson } from './llama-tiny-config.js';

const config = parseLlamaConfig(tinyConfigJson);
const saved = process.env[FUSED_KERNELS_ENV];

function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return diff / scale;
}

/** Loss and gradients of `vars` with the fused ops switched as `env` says. */
async function lossAndGrads(env: '0' | '1', loss: () => tf.Scalar, vars: tf.Variable[]): Promise<{ loss: number; grads: Float32Array[] }> {
  process.env[FUSED_KERNELS_ENV] = env;
  expect(fusedOpsMode()).toBe(env === '1' ? 'ops' : 'off');
  const { value, grads } = tf.variableGrads(loss, vars);
  const out = { loss: (await value.data())[0]!, grads: await Promise.all(vars.map(async (v) => (await grads[v.name]!.data()) as Float32Array)) };
  tf.dispose([value, ...Object.values(grads)]);
  return out;
}

// Two sequences, the second right-padded (mask 0 on its last three targets).
const ids = [[3, 1, 4, 1, 5, 9, 2, 6, 5, 3], [2, 7, 1, 8, 2, 8, 1, 8, 0, 0]];
const maskRows = [[1, 1, 1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 0, 0, 0]];

describe('llama: fused ops on vs off (cpu)', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });
  afterEach(() => {
    if (saved === undefined) delete process.env[FUSED_KERNELS_ENV];
    else process.env[FUSED_KERNELS_ENV] = saved;
  });

  it('LoRA on q/v: the same loss and LoRA gradients; no tensor left behind', async () => {
    const weights = randomLlamaWeights(config, 3, { std: 0.3, normJitter: 0.2 });
    const model = LlamaLoraModel.attach(await LlamaModel.build(config, (n) => weights.get(n)!), { targetModules: ['q_proj', 'v_proj'], variant: 'lora', rank: 4, alpha: 8, seed: 1 });
    const vars = model.trainableVariables();
    // B = 0 at the start would make every A gradient 0: give every factor values
    vars.forEach((v, i) => v.assign(tf.tensor(seededNormalValues(v.size, 0, 0.3, 50 + i), v.shape)));
    const all = tf.tensor2d(ids, [2, 10], 'int32');
    const batch = { inputs: tf.slice(all, [0, 0], [2, 9]), targets: tf.slice(all, [0, 1], [2, 9]), mask: tf.slice(tf.tensor2d(maskRows), [0, 1], [2, 9]) };
    await lossAndGrads('1', () => model.loss(batch), vars); // first use caches rotary tables and masks
    const before = tf.memory().numTensors;
    const plain = await lossAndGrads('0', () => model.loss(batch), vars);
    const fused = await lossAndGrads('1', () => model.loss(batch), vars);
    expect(tf.memory().numTensors).toBe(before);
    expect(Math.abs(fused.loss - plain.loss) / plain.loss).toBeLessThan(1e-6);
    fused.grads.forEach((g, i) => {
      expect(Math.max(...plain.grads[i]!.map(Math.abs))).toBeGreaterThan(1e-4); // a gradient that is there
      expect(relErr(g, plain.grads[i]!)).toBeLessThan(1e-4);
    });
    model.dispose();
    tf.dispose([all, batch.inputs, batch.targets, batch.mask]);
  });

  it('pre-training: the same gradients for every weight, norms (the RMSNorm weight gradient) included', async () => {
    const weights = randomLlamaWeights(config, 4, { std: 0.3, normJitter: 0.2 });
    const model = await LlamaModel.build(config, (n) => weights.get(n)!, { trainable: true });
    const vars = model.trainableVariables();
    const all = tf.tensor2d(ids, [2, 10], 'int32');
    const plain = await lossAndGrads('0', () => model.loss(all), vars);
    const fused = await lossAndGrads('1', () => model.loss(all), vars);
    expect(Math.abs(fused.loss - plain.loss) / plain.loss).toBeLessThan(1e-6);
    let worst = 0;
    fused.grads.forEach((g, i) => {
      worst = Math.max(worst, relErr(g, plain.grads[i]!));
    });
    expect(worst).toBeLessThan(1e-4);
    model.dispose();
    all.dispose();
  });
});
