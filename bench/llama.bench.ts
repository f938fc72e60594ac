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
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { parseLlamaConfig } from '../client/models/llama-config.js';
import { randomLlamaWeights } from '../client/models/llama-init.js';
import { LlamaLoraModel } from '../client/models/llama-lora.js';
import { LlamaModel } from '../client/models/llama.js';
import { LLAMA_WORDNET_CONFIG_JSON } from '../client/pretrain/llama.js';
import { AdamW } from '../client/train/adamw.js';
import { machineLine } from './machine.js';

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

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
  console.log(machineLine());
  tf.dispose([ids, inputs, targets]);
}
