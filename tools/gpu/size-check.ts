/**
 * Real-size models on one backend (issue 10, "Sizes"): load a transformers-written checkpoint
 * folder, attach LoRA (q_proj, v_proj, r 16, alpha 32), train with the client's own trainer
 * (AdamW, no synchronous read) on random token ids, and report load time, tokens/s and memory
 * (tfjs' own count of bytes on the backend, and the GPU's used memory from nvidia-smi when there
 * is one).
 *
 *   node --import tsx tools/gpu/size-check.ts --backend webgpu --model DIR [--model DIR ...] --json OUT.json
 */
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { Command } from 'commander';
import * as tf from '@tensorflow/tfjs';
import { chooseBackend, shutdownBackend } from '../../client/backend.js';
import { loadLlamaCheckpoint } from '../../client/checkpoint.js';
import { tokenSource } from '../../client/data/batches.js';
import { LlamaLoraModel } from '../../client/models/llama-lora.js';
import { train } from '../../client/train/trainer.js';
import { median } from '../../bench/timing.js';

const opts = new Command()
  .requiredOption('--backend <name>', 'backend to force')
  .requiredOption('--model <dir...>', 'checkpoint folders')
  .option('--batch <n>', 'sequences per step', '4')
  .option('--seq-len <n>', 'tokens per sequence', '256')
  .option('--steps <n>', 'optimizer steps (the first is a warm-up, not timed)', '6')
  .option('--json <file>', 'write the rows here')
  .parse()
  .opts<{ backend: string; model: string[]; batch: string; seqLen: string; steps: string; json?: string }>();

function gpuMemoryMiB(): number | null {
  try {
    const out = execFileSync('nvidia-smi', ['--query-compute-apps=pid,used_memory', '--format=csv,noheader,nounits'], { encoding: 'utf8' });
    const mine = out.split('\n').map((l) => l.split(',').map((s) => s.trim())).find(([pid]) => Number(pid) === process.pid);
    return mine === undefined ? null : Number(mine[1]);
  } catch {
    return null;
  }
}

const info = await chooseBackend({ backend: opts.backend as 'webgpu' });
process.stdout.write(`backend ${info.name} on ${info.device}\n`);
const rows: Array<Record<string, unknown>> = [];
const batch = Number(opts.batch);
const seqLen = Number(opts.seqLen);
const steps = Number(opts.steps);
try {
  for (const dir of opts.model) {
    const row: Record<string, unknown> = { model: dir, batch, seqLen };
    try {
      const t0 = performance.now();
      const { model: base, config } = await loadLlamaCheckpoint(dir, { hash: false });
      row.loadSeconds = Number(((performance.now() - t0) / 1000).toFixed(1));
      row.shape = `hidden ${config.hiddenSize}, ${config.numLayers} layers, vocab ${config.vocabSize}`;
      row.bytesOnBackendAfterLoad = tf.memory().numBytes;
      const model = LlamaLoraModel.attach(base, { targetModules: ['q_proj', 'v_proj'], variant: 'lora', rank: 16, alpha: 32, seed: 1 });
      try {
        // Random token ids (seeded), one sequence per example, enough for `steps` batches.
        let s = 12345;
        const next = (): number => (s = (s * 1103515245 + 12345) % 2147483648) % config.vocabSize;
        const sequences = Array.from({ length: batch * steps }, () => Int32Array.from({ length: seqLen + 1 }, next));
        const stepMs: number[] = [];
        let last = performance.now();
        const result = await train(model, tokenSource(sequences, seqLen, 0), {
          epochs: 1, batchSize: batch, maxSteps: steps, lr: 1e-4, seed: 1,
          onProgress: () => {
            const now = performance.now();
            stepMs.push(now - last);
            last = now;
          },
        });
        // the first step is a warm-up (shader compilation), unless it is the only one
        const ms = median(stepMs.length > 1 ? stepMs.slice(1) : stepMs);
        row.steps = result.steps;
        row.msPerStepMedian = Number(ms.toFixed(0));
        row.tokensPerSecond = Math.round((batch * seqLen) / (ms / 1000));
        row.lossFirst = Number(result.losses[0]!.toFixed(4));
        row.lossLast = Number(result.losses.at(-1)!.toFixed(4));
        row.bytesOnBackendPeak = tf.memory().numBytes;
        row.gpuMemoryMiB = gpuMemoryMiB();
        row.ok = result.losses.every(Number.isFinite);
      } finally {
        model.dispose();
      }
    } catch (e) {
      row.ok = false;
      row.error = e instanceof Error ? e.message.split('\n')[0] : String(e);
    }
    rows.push(row);
    process.stdout.write(`${row.ok ? 'PASS' : 'FAIL'}  ${JSON.stringify(row)}\n`);
  }
} finally {
  await shutdownBackend();
}
if (opts.json !== undefined) await writeFile(opts.json, `${JSON.stringify({ backend: info, rows }, null, 1)}\n`);
process.exitCode = rows.every((r) => r.ok) ? 0 : 1;
