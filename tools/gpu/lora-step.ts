/**
 * Our LoRA training step on a checkpoint folder (issue 13): LoRA r 16 / alpha 32 on q_proj and
 * v_proj, `model.loss` + `tf.variableGrads` + AdamW, batch x seq random token ids. Reports the
 * median ms per step (the loss read back every step, and every --read-every steps), the forward
 * pass alone, and a profile of one step: kernels dispatched by name (count and, where the backend
 * has timestamp queries, GPU ms), tensors and bytes allocated.
 *
 * With --compare-fused the same process measures all of that twice, with the fused kernels off
 * (FEDLORA_FUSED_KERNELS=0: the model's plain compositions and the op-path AdamW) and on (client/kernels/),
 * one optimizer each, and first checks that the loss and every LoRA gradient agree between the two
 * (max |difference| / max |value| per variable, after the warm-up steps so that B is not 0).
 *
 *   node --import tsx tools/gpu/lora-step.ts --backend webgpu --model DIR --batch 4 --seq 256 --json OUT.json [--compare-fused]
 */
import { writeFile } from 'node:fs/promises';
import { Command } from 'commander';
import * as tf from '@tensorflow/tfjs';
import { chooseBackend, shutdownBackend } from '../../client/backend.js';
import { loadLlamaCheckpoint } from '../../client/checkpoint.js';
import { LlamaLoraModel } from '../../client/models/llama-lora.js';
import { FUSED_KERNELS_ENV } from '../../client/kernels/fused-adamw.js';
import { fusedOpsMode } from '../../client/kernels/webgpu-program.js';
import { AdamW } from '../../client/train/adamw.js';
import { median } from '../../bench/timing.js';

const opts = new Command()
  .requiredOption('--backend <name>', 'backend to force')
  .requiredOption('--model <dir>', 'checkpoint folder')
  .option('--batch <n>', 'sequences per step', '4')
  .option('--seq <n>', 'tokens per sequence', '256')
  .option('--steps <n>', 'timed steps', '10')
  .option('--warm <n>', 'untimed steps first', '3')
  .option('--read-every <n>', 'read the loss back every n steps in the second timing', '10')
  .option('--json <file>', 'write the result here')
  .option('--flag <name=value...>', 'tfjs environment flags set after the backend, e.g. WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE=200')
  .option('--no-profile', 'skip the profiled step')
  .option('--compare-fused', 'measure with the fused kernels off, then on, and compare their loss and gradients')
  .parse()
  .opts<{ backend: string; model: string; batch: string; seq: string; steps: string; warm: string; readEvery: string; json?: string; flag?: string[]; profile: boolean; compareFused?: boolean }>();

const info = await chooseBackend({ backend: opts.backend as 'webgpu' });
for (const f of opts.flag ?? []) {
  const [name, value] = f.split('=');
  try {
    tf.env().set(name!, Number.isNaN(Number(value)) ? value === 'true' : Number(value));
  } catch (e) {
    process.stderr.write(`flag ${name} not set on ${info.name}: ${e instanceof Error ? e.message : String(e)}\n`);
  }
}
const [B, T, steps, warm, readEvery] = [Number(opts.batch), Number(opts.seq), Number(opts.steps), Number(opts.warm), Number(opts.readEvery)];
const { model: base, config } = await loadLlamaCheckpoint(opts.model, { hash: false });
const model = LlamaLoraModel.attach(base, { targetModules: ['q_proj', 'v_proj'], variant: 'lora', rank: 16, alpha: 32, seed: 1 });
const vars = model.trainableVariables();
let s = 7;
const ids = Int32Array.from({ length: B * (T + 1) }, () => (s = (s * 1103515245 + 12345) % 2147483648) % config.vocabSize);
const all = tf.tensor2d(ids, [B, T + 1], 'int32');
const inputs = tf.keep(tf.slice(all, [0, 0], [B, T]));
const targets = tf.keep(tf.slice(all, [0, 1], [B, T]));
all.dispose();

/** One optimizer step; returns the loss tensor (the caller reads or frees it). */
function step(optimizer: AdamW): tf.Scalar {
  return tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() => model.loss({ inputs, targets }), vars);
    optimizer.applyGradients(vars, vars.map((v) => grads[v.name]!), 1e-4);
    return value;
  });
}

async function timed(optimizer: AdamW, every: number): Promise<{ msPerStep: number; lastLoss: number }> {
  const times: number[] = [];
  let lastLoss = NaN;
  const pending: tf.Scalar[] = [];
  let t0 = performance.now();
  for (let i = 0; i < steps; i++) {
    pending.push(step(optimizer));
    if ((i + 1) % every === 0 || i === steps - 1) {
      lastLoss = (await pending.at(-1)!.data())[0]!;
      tf.dispose(pending.splice(0));
      const now = performance.now();
      const n = every === 1 ? 1 : (i % every) + 1;
      for (let k = 0; k < n; k++) times.push((now - t0) / n);
      t0 = now;
    }
  }
  return { msPerStep: Number(median(times).toFixed(1)), lastLoss };
}

/** The step's timings and profile with the fused kernels as they are switched now. */
async function measure(fused: boolean): Promise<object> {
  const optimizer = new AdamW({ weightDecay: 0.01, fused });
  for (let i = 0; i < warm; i++) {
    const l = step(optimizer);
    await l.data();
    l.dispose();
  }
  const everyStep = await timed(optimizer, 1);
  const batched = await timed(optimizer, readEvery);
  const fwdTimes: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    const logits = tf.tidy(() => model.forward(inputs));
    await logits.data();
    logits.dispose();
    fwdTimes.push(performance.now() - t0);
  }
  // One profiled step: kernels by name; kernelTimeMs is a GPU timestamp where the backend has them.
  const profile = opts.profile ? await tf.profile(() => step(optimizer)) : { kernels: [], newTensors: 0, newBytes: 0, peakBytes: 0 };
  const byKernel = new Map<string, { count: number; ms: number }>();
  for (const k of profile.kernels) {
    const ms = Number(await k.kernelTimeMs);
    const e = byKernel.get(k.name) ?? { count: 0, ms: 0 };
    e.count += 1;
    e.ms += Number.isFinite(ms) ? ms : 0;
    byKernel.set(k.name, e);
  }
  optimizer.dispose();
  const kernels = [...byKernel].map(([name, e]) => ({ name, count: e.count, ms: Number(e.ms.toFixed(2)) })).sort((a, b) => b.ms - a.ms || b.count - a.count);
  return {
    fusedOps: fusedOpsMode(),
    msPerStepReadEveryStep: everyStep.msPerStep,
    msPerStepReadEvery: { every: readEvery, ms: batched.msPerStep },
    forwardMs: Number(median(fwdTimes).toFixed(1)),
    loss: batched.lastLoss,
    profile: {
      kernelsPerStep: profile.kernels.length,
      gpuMsPerStep: Number(kernels.reduce((a, k) => a + k.ms, 0).toFixed(1)),
      newTensors: profile.newTensors, newBytes: profile.newBytes, peakBytes: profile.peakBytes,
      top: kernels.slice(0, 25),
    },
  };
}

/** Loss and LoRA gradients with the fused kernels off and on, from the same variables: their largest relative differences. */
async function compareGradients(): Promise<object> {
  const read = async (env: '0' | '1'): Promise<{ loss: number; grads: Float32Array[] }> => {
    process.env[FUSED_KERNELS_ENV] = env;
    const { value, grads } = tf.variableGrads(() => model.loss({ inputs, targets }), vars);
    const out = { loss: (await value.data())[0]!, grads: await Promise.all(vars.map(async (v) => (await grads[v.name]!.data()) as Float32Array)) };
    tf.dispose([value, ...Object.values(grads)]);
    return out;
  };
  const off = await read('0');
  const on = await read('1');
  let worst = 0;
  let zero = 0;
  off.grads.forEach((g, i) => {
    let diff = 0;
    let scale = 0;
    for (let k = 0; k < g.length; k++) {
      diff = Math.max(diff, Math.abs(on.grads[i]![k]! - g[k]!));
      scale = Math.max(scale, Math.abs(g[k]!));
    }
    if (scale === 0) zero += 1;
    else worst = Math.max(worst, diff / scale);
  });
  const lossRel = Math.abs(on.loss - off.loss) / Math.abs(off.loss);
  return { lossOff: off.loss, lossOn: on.loss, lossRelDiff: lossRel, gradMaxRelDiff: worst, variables: vars.length, zeroGradVariables: zero, ok: lossRel < 1e-4 && worst < 1e-4 };
}

const head = {
  backend: `${info.name} on ${info.device}`,
  flags: opts.flag ?? [],
  model: opts.model,
  shape: `hidden ${config.hiddenSize}, ${config.numLayers} layers, ${config.numHeads}/${config.numKvHeads} heads, vocab ${config.vocabSize}`,
  batch: B, seq: T,
};
let result: Record<string, unknown>;
if (opts.compareFused) {
  const envBefore = process.env[FUSED_KERNELS_ENV];
  process.env[FUSED_KERNELS_ENV] = '0';
  const off = await measure(false);
  const agreement = await compareGradients(); // after the off run's steps: B is no longer 0
  if (envBefore === undefined) delete process.env[FUSED_KERNELS_ENV];
  else process.env[FUSED_KERNELS_ENV] = envBefore;
  const on = await measure(true);
  const ms = (r: object): number => (r as { msPerStepReadEveryStep: number }).msPerStepReadEveryStep;
  result = { ...head, agreement, off, on, speedup: Number((ms(off) / ms(on)).toFixed(2)) };
} else {
  result = { ...head, ...(await measure(true)) };
}
result.memory = tf.memory();
const brief = (r: unknown): unknown => {
  if (typeof r !== 'object' || r === null || !('profile' in r)) return r;
  const p = (r as { profile: { top: unknown[] } }).profile;
  return { ...r, profile: { ...p, top: p.top.slice(0, 12) } };
};
process.stdout.write(`${JSON.stringify(Object.fromEntries(Object.entries(brief(result) as object).map(([k, v]) => [k, brief(v)])))}\n`);
if (opts.json !== undefined) await writeFile(opts.json, `${JSON.stringify(result, null, 1)}\n`);
tf.dispose([inputs, targets]);
model.dispose();
await shutdownBackend();
