/**
 * `npm run bench gpu-step` (issue 13): the LoRA training step on the GPU, ours (tfjs webgpu,
 * tools/gpu/lora-step.ts) against PyTorch + PEFT (tools/gpu/torch_lora_step.py, fp32 eager with
 * TF32 off, and bf16 autocast) on the same checkpoint folder, the same GPU, in the same run; LoRA
 * r 16 / alpha 32 on q_proj and v_proj, AdamW, batch 4. Prints ms per step, the ratio ours / PyTorch
 * fp32, our kernels per step and the machine.
 *
 * It needs a WebGPU adapter and python3 with torch + CUDA, transformers and peft: on the GPU
 * machine it runs through `bash tools/gpu/run.sh setup step` (docs/verification.md); elsewhere it
 * says what is missing and measures nothing.
 * Folders: GPU_STEP_MODELS (comma-separated), default the SmolLM-135M-shaped and Qwen2.5-0.5B-shaped
 * folders that tools/gpu/run.sh writes under GPU_WORK (default /tmp/fedlora-gpu).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { machineLine } from './machine.js';

const ROOT = resolve(import.meta.dirname, '..');

interface Ours { msPerStepReadEveryStep: number; msPerStepReadEvery: { every: number; ms: number }; forwardMs: number; profile: { kernelsPerStep: number; gpuMsPerStep: number } }
interface Torch { fp32: { msPerStep: number; forwardMs: number; peakMemoryMiB: number }; bf16_autocast: { msPerStep: number } }

function webgpuAvailable(): string | null {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/fedlora.mjs'), 'backend', '--backend', 'webgpu'], { encoding: 'utf8' });
  return r.status === 0 ? null : (r.stderr.trim().split('\n').at(-1) ?? 'webgpu is not usable');
}

function torchAvailable(): string | null {
  const r = spawnSync('python3', ['-c', 'import torch, transformers, peft; assert torch.cuda.is_available()'], { encoding: 'utf8' });
  return r.status === 0 ? null : 'python3 with torch (CUDA), transformers and peft is not available';
}

export async function run(): Promise<void> {
  console.log(machineLine());
  const missing = webgpuAvailable() ?? torchAvailable();
  if (missing !== null) {
    console.log(`gpu-step: skipped (${missing}); run it on a GPU machine with \`bash tools/gpu/run.sh setup step\``);
    return;
  }
  const work = process.env.GPU_WORK ?? '/tmp/fedlora-gpu';
  const models = (process.env.GPU_STEP_MODELS ?? `${work}/models/smollm-135m,${work}/sizes/qwen2.5-0.5b-full`).split(',').filter((m) => existsSync(join(m, 'config.json')));
  const cases = models.flatMap((m) => (basename(m).startsWith('smollm') ? [[m, 256], [m, 1024]] : [[m, 256]]) as Array<[string, number]>);
  console.log('| model | batch x seq | PyTorch fp32 ms | PyTorch bf16 ms | ours ms (loss read every step) | ours ms (read every 10) | ours / PyTorch fp32 | our kernels per step | forward: ours / PyTorch ms |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const [model, seq] of cases) {
    const oursFile = join(tmpdir(), `gpu-step-ours-${basename(model)}-${seq}.json`);
    const torchFile = join(tmpdir(), `gpu-step-torch-${basename(model)}-${seq}.json`);
    const ours = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'tools/gpu/lora-step.ts'), '--backend', 'webgpu', '--model', model, '--batch', '4', '--seq', String(seq), '--json', oursFile], { encoding: 'utf8', cwd: ROOT });
    const torch = spawnSync('python3', [join(ROOT, 'tools/gpu/torch_lora_step.py'), model, '--batch', '4', '--seq', String(seq), '--json', torchFile], { encoding: 'utf8', cwd: ROOT });
    if (ours.status !== 0 || torch.status !== 0) {
      console.log(`| ${basename(model)} | 4 x ${seq} | failed: ${ours.status !== 0 ? `ours: ${ours.stderr.trim().split('\n').at(-1)}` : ''} ${torch.status !== 0 ? `torch: ${torch.stderr.trim().split('\n').at(-1)}` : ''} |`);
      continue;
    }
    const o = JSON.parse(readFileSync(oursFile, 'utf8')) as Ours;
    const t = JSON.parse(readFileSync(torchFile, 'utf8')) as Torch;
    const best = Math.min(o.msPerStepReadEveryStep, o.msPerStepReadEvery.ms);
    console.log(`| ${basename(model)} | 4 x ${seq} | ${t.fp32.msPerStep} | ${t.bf16_autocast.msPerStep} | ${o.msPerStepReadEveryStep} | ${o.msPerStepReadEvery.ms} | ${(best / t.fp32.msPerStep).toFixed(2)}x | ${o.profile.kernelsPerStep} | ${o.forwardMs} / ${t.fp32.forwardMs} |`);
    console.log(`  ours: ${oursFile}; torch: ${torchFile}`);
  }
}
