/**
 * The LoRA training step of docs/training.md, "Backends": X 2048 x 768,
 * frozen W 768 x 768, r = 8, alpha = 16, Adam (lr 1e-3), loss mean((h - T)^2); 1 layer, and 4
 * layers with GELU between. Two formulations measured in the same run, on each backend that is
 * usable here (wasm always; webgpu where Dawn finds an adapter):
 *  - ours: client/lora/lora-dense.ts (W stored [in, out], custom gradient with the stored [out, in]
 *    copy, trainable factors stored as the forward matmuls want them);
 *  - naive: W [out, in], A [r, in], B [out, r] as PyTorch stores them, y = x W^T + s (x A^T) B^T
 *    with transposed matmuls, gradients by tf.
 * Prints median ms/step, rows/s (tokens/s for a sequence model) and the ratio naive / ours.
 * Then, on wasm, one DP-SGD clipped-gradient sum on the digits mlp (64 -> 64 -> 64 -> 10, LoRA
 * r = 8 on every layer, 64 examples): ghost norms against per-example micro-batches, same run.
 * FEDLORA_BENCH_STEPS overrides the measured steps (default 5 for 1 layer, 3 for 4 layers);
 * FEDLORA_BENCH_BACKENDS the backends (default `wasm,webgpu`).
 */
import * as tf from '@tensorflow/tfjs';
import { chooseBackend, shutdownBackend, type BackendName } from '../client/backend.js';
import { variableFrom } from '../client/lora/init.js';
import { LoraDense } from '../client/lora/lora-dense.js';
import { avoidTransposeFlags, setMatmulPolicy } from '../client/lora/matmul-policy.js';
import { tableSource } from '../client/data/batches.js';
import { loadCsv } from '../client/data/csv.js';
import { MlpClassifier } from '../client/models/mlp.js';
import { MLP_MODEL_TYPE, mlpTensorShapes, type MlpConfig } from '../client/models/mlp-config.js';
import { clippedGradientSum, type DpClipMode } from '../client/train/dp-sgd.js';
import { machineLine } from './machine.js';
import { seededNormalValues } from '../client/lora/seeded-draws.js';

const N = 2048;
const D = 768;
const R = 8;
const ALPHA = 16;
const WARMUP = 2;

interface Setup {
  /** One training step: forward, backward, Adam update. */
  step(): Promise<number>;
  dispose(): void;
}

function gelu(x: tf.Tensor): tf.Tensor {
  const c = Math.sqrt(2 / Math.PI);
  return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(tf.mul(tf.add(x, tf.mul(tf.mul(x, tf.mul(x, x)), 0.044715)), c))));
}

function randn(shape: number[], std: number, seed: number): Float32Array {
  return seededNormalValues(shape.reduce((a, b) => a * b, 1), 0, std, seed);
}

/** Shared pieces: input, target, per-layer W, A, B (same values for both formulations). */
function data(layers: number): { X: tf.Tensor2D; T: tf.Tensor2D; W: Float32Array[]; A: Float32Array[]; B: Float32Array[] } {
  return {
    X: tf.tensor2d(randn([N, D], 1, 21), [N, D]),
    T: tf.tensor2d(randn([N, D], 1, 22), [N, D]),
    W: Array.from({ length: layers }, (_, l) => randn([D, D], 1 / Math.sqrt(D), 100 + l)),
    A: Array.from({ length: layers }, (_, l) => randn([R, D], 0.02, 200 + l)),
    B: Array.from({ length: layers }, (_, l) => randn([D, R], 0.02, 300 + l)),
  };
}

async function timedStep(opt: tf.Optimizer, loss: () => tf.Scalar, vars: tf.Variable[]): Promise<number> {
  const t0 = performance.now();
  const cost = opt.minimize(loss, true, vars)!;
  await cost.data();
  cost.dispose();
  return performance.now() - t0;
}

function ours(layers: number): Setup {
  const d = data(layers);
  const mods = d.W.map((w, l) => {
    const m = new LoraDense({ path: `layers.${l}`, variant: 'lora', inFeatures: D, outFeatures: D, rank: R, alpha: ALPHA, weight: w });
    m.setFactors({ A: d.A[l]!, B: d.B[l]! });
    return m;
  });
  const vars = mods.flatMap((m) => m.trainableVariables());
  const opt = tf.train.adam(1e-3);
  const loss = (): tf.Scalar => {
    let h: tf.Tensor = d.X;
    mods.forEach((m, l) => { h = m.forward(h); if (l < layers - 1) h = gelu(h); });
    return tf.mean(tf.square(tf.sub(h, d.T)));
  };
  return {
    step: () => timedStep(opt, loss, vars),
    dispose: () => { for (const m of mods) m.dispose(); tf.dispose([d.X, d.T]); opt.dispose(); },
  };
}

function naive(layers: number): Setup {
  const d = data(layers);
  const W = d.W.map((w) => tf.tensor2d(w, [D, D]));
  const A = d.A.map((a) => variableFrom(tf.tensor2d(a, [R, D])));
  const B = d.B.map((b) => variableFrom(tf.tensor2d(b, [D, R])));
  const opt = tf.train.adam(1e-3);
  const loss = (): tf.Scalar => {
    let h: tf.Tensor2D = d.X;
    for (let l = 0; l < layers; l++) {
      const base = tf.matMul(h, W[l]!, false, true);
      const low = tf.matMul(tf.matMul(h, A[l]! as tf.Tensor2D, false, true), B[l]! as tf.Tensor2D, false, true);
      h = tf.add(base, tf.mul(low, ALPHA / R));
      if (l < layers - 1) h = gelu(h) as tf.Tensor2D;
    }
    return tf.mean(tf.square(tf.sub(h, d.T)));
  };
  return {
    step: () => timedStep(opt, loss, [...A, ...B]),
    dispose: () => { tf.dispose([...W, ...A, ...B, d.X, d.T]); opt.dispose(); },
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function measure(make: (layers: number) => Setup, layers: number, steps: number): Promise<number> {
  const setup = make(layers);
  try {
    for (let i = 0; i < WARMUP; i++) await setup.step();
    const times: number[] = [];
    for (let i = 0; i < steps; i++) times.push(await setup.step());
    return median(times);
  } finally {
    setup.dispose();
  }
}

/** Median ms of one clipped-gradient sum over 64 digits with each clipping mode. */
async function dpBench(): Promise<void> {
  const digits = await loadCsv('simulations/data/digits.csv.gz');
  const config: MlpConfig = { model_type: MLP_MODEL_TYPE, input_size: 64, hidden_sizes: [64, 64], num_labels: 10, hidden_act: 'relu' };
  const weights = new Map([...mlpTensorShapes(config)].map(([name, shape], i) => {
    const n = shape.reduce((a, b) => a * b, 1);
    return [name, name === 'input_norm.std' ? new Float32Array(n).fill(8) : name === 'input_norm.mean' ? new Float32Array(n).fill(4) : randn([n], 0.1, 500 + i)];
  }));
  const model = MlpClassifier.fromCheckpoint({ config, weights }, { variant: 'lora', rank: 8, alpha: 16 });
  for (const m of model.modules().values()) m.setFactors({ B: randn([m.outFeatures * m.rank], 0.05, 7) });
  const idx = Array.from({ length: 64 }, (_, i) => i * 11);
  const ms: Partial<Record<DpClipMode, number>> = {};
  for (const mode of ['ghost', 'microbatch'] as const) {
    const times: number[] = [];
    for (let i = 0; i < 6; i++) {
      const t0 = performance.now();
      await clippedGradientSum(model, tableSource(digits), idx, 1, mode);
      if (i > 0) times.push(performance.now() - t0);
    }
    ms[mode] = median(times);
  }
  model.dispose();
  console.log(`  DP-SGD clipped sum, digits mlp [64, 64], LoRA r 8, 64 examples: ghost ${ms.ghost!.toFixed(1)} ms, micro-batches of one ${ms.microbatch!.toFixed(1)} ms; microbatch / ghost = ${(ms.microbatch! / ms.ghost!).toFixed(1)}x`);
}

export async function run(): Promise<void> {
  const override = Number(process.env.FEDLORA_BENCH_STEPS ?? '');
  const backends = (process.env.FEDLORA_BENCH_BACKENDS ?? 'wasm,webgpu').split(',').map((b) => b.trim()) as BackendName[];
  for (const backend of backends) {
    let device: string;
    try {
      device = (await chooseBackend({ backend })).device;
    } catch (e) {
      console.log(`${backend}: skipped (${(e as Error).message.split('\n')[0]})`);
      continue;
    }
    console.log(`${backend} on ${device}`);
    for (const layers of [1, 4]) {
      const steps = Number.isInteger(override) && override > 0 ? override : layers === 1 ? 5 : 3;
      const msOurs = await measure(ours, layers, steps);
      const msNaive = await measure(naive, layers, steps);
      const rows = (ms: number): string => `${Math.round(N / (ms / 1000)).toLocaleString('en-US')} rows/s`;
      console.log(
        `  LoRA step, X ${N}x${D}, W ${D}x${D}, r ${R}, Adam, ${layers} layer${layers > 1 ? 's (GELU between)' : ''}, median of ${steps}: ` +
        `ours (${avoidTransposeFlags() ? 'stored layouts, custom gradients' : 'transpose flags'}) ${msOurs.toFixed(1)} ms (${rows(msOurs)}), ` +
        `naive ${msNaive.toFixed(1)} ms (${rows(msNaive)}); naive / ours = ${(msNaive / msOurs).toFixed(2)}x`,
      );
      if (!avoidTransposeFlags()) {
        // what the wasm formulation would cost here: the reason the policy is per backend
        const previous = setMatmulPolicy('explicit');
        const msExplicit = await measure(ours, layers, steps);
        setMatmulPolicy(previous);
        console.log(`    (ours with the wasm formulation forced: ${msExplicit.toFixed(1)} ms; naive / that = ${(msNaive / msExplicit).toFixed(2)}x)`);
      }
    }
    if (backend === 'wasm') await dpBench();
    await shutdownBackend();
  }
  console.log(machineLine());
}
