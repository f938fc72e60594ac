/**
 * The fused WGSL kernels against the op path they replace, on the webgpu backend (issue 13:
 * "correctness is not traded"):
 * - AdamW (client/kernels/fused-adamw.ts) on variables of LoRA shapes, 5 steps with weight decay,
 *   each path from the same start; the largest |difference| relative to the largest |value| of p,
 *   m and v must stay at float32 rounding (< 1e-6);
 * - the fused model ops (cross-entropy, RMSNorm, rotary, SwiGLU: client/kernels/fused-*.ts) against
 *   the plain tfjs compositions the model uses without them (tfjs' own gradients), on the same
 *   backend, for seeded inputs of the SmolLM-135M step's shapes and of odd sizes (not multiples of
 *   the workgroups): the forward output and the gradient of sum(w * op(x)) for a random w, as max
 *   |difference| / max |reference| (< 1e-4, the issue's rule), and ms per call of each (forward
 *   alone, and forward + backward), fused and plain.
 *
 *   node --import tsx tools/gpu/kernels-check.ts --backend webgpu [--json OUT.json] [--only adamw,ops]
 */
import { writeFile } from 'node:fs/promises';
import { Command } from 'commander';
import * as tf from '@tensorflow/tfjs';
import { chooseBackend, shutdownBackend } from '../../client/backend.js';
import { fusedAdamWActive } from '../../client/kernels/fused-adamw.js';
import { crossEntropyPlain, fusedCrossEntropy } from '../../client/kernels/fused-cross-entropy.js';
import { fusedRmsNorm, rmsNormPlain } from '../../client/kernels/fused-rms-norm.js';
import { fusedRope } from '../../client/kernels/fused-rope.js';
import { fusedSwiglu, swigluPlain } from '../../client/kernels/fused-swiglu.js';
import { applyRope, ropeTables } from '../../client/models/llama-rope.js';
import { seededNormalValues } from '../../client/lora/seeded-draws.js';
import { AdamW } from '../../client/train/adamw.js';

const opts = new Command()
  .requiredOption('--backend <name>', 'backend to force')
  .option('--json <file>', 'write the result here')
  .option('--only <parts>', 'adamw, ops or both', 'adamw,ops')
  .option('--reps <n>', 'timed calls per measurement', '10')
  .option('--odd-only', 'only the odd sizes (a quick dry run on a CPU backend)')
  .parse()
  .opts<{ backend: string; json?: string; only: string; reps: string; oddOnly?: boolean }>();

const info = await chooseBackend({ backend: opts.backend as 'webgpu' });
async function checkAdamW(): Promise<{ check: string; maxRelativeDifference: number; ok: boolean }> {
  const shapes = [[576, 16], [16, 576], [16, 192], [2048, 16]];
  const runPath = async (fused: boolean): Promise<Float32Array[]> => {
    let seed = 1;
    const vars = shapes.map((s) => tf.variable(tf.tensor(seededNormalValues(s[0]! * s[1]!, 0, 0.1, seed++), s)));
    const opt = new AdamW({ weightDecay: 0.01, fused });
    for (let step = 0; step < 5; step++) {
      const grads = shapes.map((s) => tf.tensor(seededNormalValues(s[0]! * s[1]!, 0, 1, 100 + 10 * step + seed++), s));
      opt.applyGradients(vars, grads, 1e-2);
      tf.dispose(grads);
    }
    const out = await Promise.all(vars.map(async (v) => (await v.data()) as Float32Array));
    opt.dispose();
    tf.dispose(vars);
    return out;
  };
  const fused = await runPath(true);
  const plain = await runPath(false);
  let worst = 0;
  fused.forEach((f, i) => {
    const p = plain[i]!;
    let maxDiff = 0;
    let maxAbs = 0;
    for (let k = 0; k < p.length; k++) {
      maxDiff = Math.max(maxDiff, Math.abs(f[k]! - p[k]!));
      maxAbs = Math.max(maxAbs, Math.abs(p[k]!));
    }
    worst = Math.max(worst, maxDiff / maxAbs);
  });
  return { check: 'AdamW: fused WGSL kernels vs the op path, 4 LoRA-shaped variables, 5 steps', maxRelativeDifference: worst, ok: fusedAdamWActive() && worst < 1e-6 };
}

/** max |got - want| / max |want| over two same-sized arrays. */
function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return scale === 0 ? diff : diff / scale;
}

const reps = Number(opts.reps);
/** Mean ms per call over `reps` calls, the GPU drained by reading the last result. */
async function msPerCall(run: () => tf.Tensor | tf.Tensor[]): Promise<number> {
  tf.dispose(run()); // compile the pipelines outside the timing
  const t0 = performance.now();
  let last: tf.Tensor | tf.Tensor[] = [];
  for (let i = 0; i < reps; i++) {
    tf.dispose(last);
    last = run();
  }
  const outs = Array.isArray(last) ? last : [last];
  await Promise.all(outs.map((t) => t.data()));
  tf.dispose(last);
  return Number(((performance.now() - t0) / reps).toFixed(3));
}

interface OpCase {
  op: string;
  shape: string;
  /** The inputs that get gradients, and the fused and plain ops on them. */
  inputs: tf.Tensor[];
  fused: (...xs: tf.Tensor[]) => tf.Tensor;
  plain: (...xs: tf.Tensor[]) => tf.Tensor;
  others: tf.Tensor[];
}

let seed = 1000;
const normal = (shape: number[], std = 1): tf.Tensor => tf.tensor(seededNormalValues(shape.reduce((a, b) => a * b, 1), 0, std, seed++), shape);

function cases(): OpCase[] {
  const out: OpCase[] = [];
  const big = opts.oddOnly !== true;
  // SmolLM-135M step: 4 x 256 tokens, hidden 576, MLP 1536, 9 / 3 heads of 64, vocabulary 49,152; then odd sizes.
  for (const [rows, vocab] of big ? [[1024, 49152], [37, 1001]] as const : [[37, 1001]] as const) {
    const labels = tf.tensor1d(Int32Array.from({ length: rows }, (_, r) => (r * 7919 + 13) % vocab), 'int32');
    out.push({ op: 'crossEntropy', shape: `${rows}x${vocab}`, inputs: [normal([rows, vocab], 3)], others: [labels],
      fused: (x) => fusedCrossEntropy(x as tf.Tensor2D, labels), plain: (x) => crossEntropyPlain(x as tf.Tensor2D, labels) });
  }
  for (const [rows, n] of big ? [[1024, 576], [37, 333]] as const : [[37, 333]] as const) {
    const w = normal([n], 0.5) as tf.Tensor1D;
    out.push({ op: 'rmsNorm (frozen weight)', shape: `${rows}x${n}`, inputs: [normal([rows, n])], others: [w],
      fused: (x) => fusedRmsNorm(x, w, 1e-5), plain: (x) => rmsNormPlain(x, w, 1e-5) });
    out.push({ op: 'rmsNorm (trained weight)', shape: `${rows}x${n}`, inputs: [normal([rows, n]), normal([n], 0.5)], others: [],
      fused: (x, v) => fusedRmsNorm(x, v as tf.Tensor1D, 1e-5, true), plain: (x, v) => rmsNormPlain(x, v as tf.Tensor1D, 1e-5) });
  }
  for (const shape of big ? [[4, 9, 256, 64], [4, 3, 256, 64], [3, 5, 37, 10]] : [[3, 5, 37, 10]]) {
    const [T, d] = shape.slice(-2) as [number, number];
    const tables = ropeTables(d, 10000, T);
    const cos = tf.tensor2d(tables.cos, [T, d / 2]);
    const sin = tf.tensor2d(tables.sin, [T, d / 2]);
    out.push({ op: 'rope', shape: shape.join('x'), inputs: [normal(shape)], others: [cos, sin],
      fused: (x) => fusedRope(x, cos, sin), plain: (x) => applyRope(x, cos, sin) });
  }
  for (const shape of big ? [[4, 256, 1536], [37, 333]] : [[37, 333]]) {
    out.push({ op: 'swiglu', shape: shape.join('x'), inputs: [normal(shape, 3), normal(shape)], others: [],
      fused: fusedSwiglu, plain: swigluPlain });
  }
  return out;
}

async function checkOps(): Promise<{ ok: boolean; worst: number; ops: object[] }> {
  const rows: object[] = [];
  let worst = 0;
  for (const c of cases()) {
    const y = c.plain(...c.inputs);
    const w = normal(y.shape);
    y.dispose();
    const gradsOf = (f: (...xs: tf.Tensor[]) => tf.Tensor): tf.Tensor[] => tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), w)))(c.inputs);
    const [yf, yp] = [c.fused(...c.inputs), c.plain(...c.inputs)];
    const forward = relErr(await yf.data(), await yp.data());
    const [gf, gp] = [gradsOf(c.fused), gradsOf(c.plain)];
    const backward = await Promise.all(gf.map(async (g, i) => relErr(await g.data(), await gp[i]!.data())));
    tf.dispose([yf, yp, ...gf, ...gp]);
    const row = {
      op: c.op, shape: c.shape, forwardRelErr: forward, gradRelErr: backward,
      msForward: { fused: await msPerCall(() => c.fused(...c.inputs)), plain: await msPerCall(() => c.plain(...c.inputs)) },
      msForwardBackward: { fused: await msPerCall(() => gradsOf(c.fused)), plain: await msPerCall(() => gradsOf(c.plain)) },
    };
    worst = Math.max(worst, forward, ...backward);
    process.stdout.write(`${JSON.stringify(row)}\n`);
    rows.push(row);
    tf.dispose([...c.inputs, ...c.others, w]);
  }
  return { ok: worst < 1e-4, worst, ops: rows };
}

const result: Record<string, unknown> = { backend: `${info.name} on ${info.device}`, fusedActive: fusedAdamWActive() };
const parts = opts.only.split(',');
let ok = true;
if (parts.includes('adamw')) {
  const adamw = await checkAdamW();
  Object.assign(result, adamw);
  ok &&= adamw.ok;
}
if (parts.includes('ops')) {
  try {
    const ops = await checkOps();
    result.fusedOps = ops;
    ok &&= ops.ok;
  } catch (e) {
    result.fusedOps = { ok: false, error: e instanceof Error ? e.stack ?? e.message : String(e) };
    ok = false;
  }
}
result.ok = ok;
process.stdout.write(`${result.ok ? 'PASS' : 'FAIL'}  ${JSON.stringify(result)}\n`);
if (opts.json !== undefined) await writeFile(opts.json, `${JSON.stringify(result, null, 1)}\n`);
await shutdownBackend();
process.exitCode = result.ok ? 0 : 1;
