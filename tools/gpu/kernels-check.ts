/**
 * The fused WGSL kernels against the op path they replace, on the webgpu backend (issue 13:
 * "correctness is not traded"): AdamW (client/kernels/fused-adamw.ts) on variables of LoRA shapes,
 * 5 steps with weight decay, each path from the same start; the largest |difference| relative to
 * the largest |value| of p, m and v must stay at float32 rounding (< 1e-6).
 *
 *   node --import tsx tools/gpu/kernels-check.ts --backend webgpu [--json OUT.json]
 */
import { writeFile } from 'node:fs/promises';
import { Command } from 'commander';
import * as tf from '@tensorflow/tfjs';
import { chooseBackend, shutdownBackend } from '../../client/backend.js';
import { fusedAdamWActive } from '../../client/kernels/fused-adamw.js';
import { seededNormalValues } from '../../client/lora/seeded-draws.js';
import { AdamW } from '../../client/train/adamw.js';

const opts = new Command()
  .requiredOption('--backend <name>', 'backend to force')
  .option('--json <file>', 'write the result here')
  .parse()
  .opts<{ backend: string; json?: string }>();

const info = await chooseBackend({ backend: opts.backend as 'webgpu' });
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
const result: Record<string, unknown> = { backend: `${info.name} on ${info.device}`, fusedActive: fusedAdamWActive() };
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
result.check = 'AdamW: fused WGSL kernels vs the op path, 4 LoRA-shaped variables, 5 steps';
result.maxRelativeDifference = worst;
result.ok = fusedAdamWActive() && worst < 1e-6;
process.stdout.write(`${result.ok ? 'PASS' : 'FAIL'}  ${JSON.stringify(result)}\n`);
if (opts.json !== undefined) await writeFile(opts.json, `${JSON.stringify(result, null, 1)}\n`);
await shutdownBackend();
process.exitCode = result.ok ? 0 : 1;
