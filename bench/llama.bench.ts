/**
 * `npm run bench llama`: one LoRA training step (forward, backward, AdamW) of the small base
 * llama (the `fedlora pretrain llama` config: 4 layers, hidden 256, 8 heads on 4 kv heads, 2.97M
 * parameters, byte vocabulary) with LoRA r = 8 on q_proj and v_proj, on the wasm backend, against
 * baselines measured in the same run:
 *  - the same step with the naive formulation (transposed matmuls and tfjs' own gradients,
 *    `naiveMatmuls`), which the default storage and custom gradients replace;
 *  - the forward pass alone with LoRA off (inference), the floor of any training step.
 * Prints ms/step (median), tokens/s, the ratios and the machine line.
 * Environment: LLAMA_BENCH_BATCH (default 4), LLAMA_BENCH_SEQ (128), LLAMA_BENCH_STEPS (5).
 *
 * With LLAMA_BENCH_SMOL=1 it also writes a random checkpoint of SmolLM-135M's shape (134.5M
 * parameters, F32, 538 MB, tensors streamed to disk one at a time), loads it with
 * loadLlamaCheckpoint (time, resident memory), and times a forward pass and a LoRA q/v step on
 * one sequence of 128 tokens: what a client with a real small checkpoint would see.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { rm } from 'node:fs/promises';
import { loadLlamaCheckpoint } from '../client/checkpoint.js';
import { llamaParameterCount as llamaParameterCountOf, parseLlamaConfig } from '../client/models/llama-config.js';
import { randomLlamaWeights } from '../client/models/llama-init.js';
import { LlamaLoraModel } from '../client/models/llama-lora.js';
import { LlamaModel } from '../client/models/llama.js';
import { LLAMA_WORDNET_CONFIG_JSON } from '../client/pretrain/llama.js';
import { AdamW } from '../client/train/adamw.js';
import { machineLine } from './machine.js';
import { median } from './timing.js';
import { writeTimingCheckpoint } from './timing-checkpoint.js';

async function timeSteps(step: () => Promise<void>, warm: number, steps: number): Promise<number> {
  for (let i = 0; i < warm; i++) await step();
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    await step();
    times.push(performance.now() - t0);
  }
  return median(times);
}

/** SmolLM-135M's published config (HuggingFaceTB/SmolLM-135M). */
const SMOL_LM_135M = {
  model_type: 'llama', vocab_size: 49152, hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30, num_attention_heads: 9,
  num_key_value_heads: 3, rms_norm_eps: 1e-5, rope_theta: 10000, max_position_embeddings: 2048, tie_word_embeddings: true,
};

async function smolSized(): Promise<void> {
  const config = parseLlamaConfig(SMOL_LM_135M);
  const dir = await writeTimingCheckpoint(config, 'fedlora-smol-');
  try {
    const rss0 = process.memoryUsage().rss;
    const t0 = performance.now();
    const { model: base, sha256 } = await loadLlamaCheckpoint(dir);
    const loadMs = performance.now() - t0;
    const rss1 = process.memoryUsage().rss;
    const tfBytes = tf.memory().numBytes;
    const model = LlamaLoraModel.attach(base, { targetModules: ['q_proj', 'v_proj'], variant: 'lora', rank: 8, alpha: 16 });
    const ids = tf.randomUniform([1, 129], 0, config.vocabSize, 'int32', 2) as tf.Tensor2D;
    const inputs = tf.slice(ids, [0, 0], [1, 128]) as tf.Tensor2D;
    const targets = tf.slice(ids, [0, 1], [1, 128]) as tf.Tensor2D;
    const forward = await timeSteps(async () => {
      const l = tf.tidy(() => model.loss({ inputs, targets }));
      await l.data();
      l.dispose();
    }, 1, 2);
    const optimizer = new AdamW();
    const vars = model.trainableVariables();
    const step = await timeSteps(async () => {
      const l = tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => model.loss({ inputs, targets }), vars);
        optimizer.applyGradients(vars, vars.map((v) => grads[v.name]!), 1e-4);
        return value;
      });
      await l.data();
      l.dispose();
    }, 1, 2);
    console.log(`SmolLM-135M-shaped checkpoint (${(llamaParameterCountOf(config) / 1e6).toFixed(1)}M parameters, F32): load + SHA-256 ${(loadMs / 1000).toFixed(1)} s, tfjs holds ${(tfBytes / 2 ** 30).toFixed(2)} GiB, process resident memory +${((rss1 - rss0) / 2 ** 30).toFixed(2)} GiB (sha ${sha256!.slice(0, 12)}...)`);
    console.log(`  1 x 128 tokens: forward ${forward.toFixed(0)} ms, LoRA q/v step ${step.toFixed(0)} ms; step / forward ${(step / forward).toFixed(2)}x`);
    optimizer.dispose();
    model.dispose();
    tf.dispose([ids, inputs, targets]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<void> {
  const batch = Number(process.env['LLAMA_BENCH_BATCH'] ?? 4);
  const seq = Number(process.env['LLAMA_BENCH_SEQ'] ?? 128);
  const steps = Number(process.env['LLAMA_BENCH_STEPS'] ?? 5);
  await tf.setBackend('wasm');
  const config = parseLlamaConfig(LLAMA_WORDNET_CONFIG_JSON);
  const weights = randomLlamaWeights(config, 0);
  const ids = tf.randomUniform([batch, seq + 1], 0, config.vocabSize, 'int32', 1) as tf.Tensor2D;
  const inputs = tf.slice(ids, [0, 0], [batch, seq]) as tf.Tensor2D;
  const targets = tf.slice(ids, [0, 1], [batch, seq]) as tf.Tensor2D;
  const tokens = batch * seq;

  const loraStep = async (naive: boolean): Promise<{ ms: number; loss: number }> => {
    const base = await LlamaModel.build(config, (n) => weights.get(n)!, { naiveMatmuls: naive });
    const model = LlamaLoraModel.attach(base, { targetModules: ['q_proj', 'v_proj'], variant: 'lora', rank: 8, alpha: 16, seed: 0 });
    const optimizer = new AdamW();
    const vars = model.trainableVariables();
    let loss = NaN;
    const step = async (): Promise<void> => {
      const value = tf.tidy(() => {
        const { value: l, grads } = tf.variableGrads(() => model.loss({ inputs, targets }), vars);
        optimizer.applyGradients(vars, vars.map((v) => grads[v.name]!), 1e-3);
        return l;
      });
      loss = (await value.data())[0]!;
      value.dispose();
    };
    const ms = await timeSteps(step, 1, steps);
    optimizer.dispose();
    model.dispose();
    return { ms, loss };
  };

  const forwardOnly = async (): Promise<number> => {
    const model = await LlamaModel.build(config, (n) => weights.get(n)!);
    const ms = await timeSteps(async () => {
      const l = tf.tidy(() => model.loss(ids));
      await l.data();
      l.dispose();
    }, 1, steps);
    model.dispose();
    return ms;
  };

  console.log(`llama ${config.numLayers} layers, hidden ${config.hiddenSize}, heads ${config.numHeads}/${config.numKvHeads} kv, vocab ${config.vocabSize}; batch ${batch} x ${seq} tokens; LoRA r 8 on q_proj, v_proj; backend ${tf.getBackend()}; median of ${steps} steps`);
  const ours = await loraStep(false);
  const naive = await loraStep(true);
  const forward = await forwardOnly();
  const line = (name: string, ms: number): string => `${name.padEnd(52)} ${ms.toFixed(0).padStart(7)} ms/step ${(tokens / (ms / 1000)).toFixed(0).padStart(7)} tokens/s`;
  console.log(line('LoRA step, stored [in, out] + custom gradients', ours.ms));
  console.log(line('LoRA step, naive (transposed matmuls, tfjs gradients)', naive.ms));
  console.log(line('forward only, LoRA off', forward));
  console.log(`ratio naive / ours: ${(naive.ms / ours.ms).toFixed(2)}x; LoRA step / forward: ${(ours.ms / forward).toFixed(2)}x`);
  // Both formulations compute the same function: the last losses agree to float32 rounding.
  console.log(`same model check: last loss ours ${ours.loss.toFixed(5)}, naive ${naive.loss.toFixed(5)}`);
  tf.dispose([ids, inputs, targets]);
  if (process.env['LLAMA_BENCH_SMOL'] === '1') await smolSized();
  console.log(machineLine());
}
