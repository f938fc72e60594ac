/**
 * `npm run bench threads`: data-parallel LoRA training on the CPU (client/train/train-worker-pool.ts)
 * against one thread, measured in the same run. tfjs' wasm backend runs one thread in Node, so
 * the one-thread figure is today's speed; N threads each run their own wasm backend on their own
 * copy of the model, on a shard of every batch.
 *
 * The model is the llama shape of `npm run bench llama` (4 layers, hidden 256, 8 heads on 4 kv
 * heads, byte vocabulary; random weights written to a temporary folder, which the workers load),
 * LoRA r 8 / alpha 16 on q_proj and v_proj, AdamW, the real trainer (`train`), sequences of 128
 * tokens, no padding. Prints, per thread count, the median ms per optimizer step, tokens/s, the
 * speed-up over 1 thread and the efficiency (speed-up / threads); the load average (the dev
 * machine is shared) and the machine line.
 *
 * Environment: THREADS_BENCH_THREADS (default "1,<cores>"), THREADS_BENCH_BATCH (sequences per
 * step; default max(4, 2 x the largest thread count), so every thread gets at least 2),
 * THREADS_BENCH_SEQ (128), THREADS_BENCH_STEPS (timed steps after one warm-up step; 3).
 * With LLAMA_BENCH_SMOL=1 it also runs SmolLM-135M's shape (30 layers, hidden 576, vocabulary
 * 49,152; a 538 MB random F32 checkpoint), batch = the largest thread count x 1 sequence of 128
 * tokens (THREADS_BENCH_SMOL_BATCH), the shape the issue's 6,569 ms per sequence was measured on;
 * there each thread's forward pass holds one sequence and gradient accumulation makes up the batch
 * (the same step: a whole batch in one forward pass aborted the 4 GiB wasm heap of one thread).
 * THREADS_BENCH_SMOL_ONLY=1 skips the small llama.
 * The PyTorch reference on the same CPU is tools/gpu/torch_cpu_step.py.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import { chooseBackend } from '../client/backend.js';
import { loadLlamaCheckpoint } from '../client/checkpoint.js';
import { tokenSource } from '../client/data/batches.js';
import { parseLlamaConfig, type LlamaConfig } from '../client/models/llama-config.js';
import { LlamaLoraModel } from '../client/models/llama-lora.js';
import { LLAMA_WORDNET_CONFIG_JSON } from '../client/pretrain/llama.js';
import { train } from '../client/train/trainer.js';
import { TrainWorkerPool } from '../client/train/train-worker-pool.js';
import { machineLine } from './machine.js';
import { median } from './timing.js';
import { writeTimingCheckpoint } from './timing-checkpoint.js';

/** SmolLM-135M's published config (HuggingFaceTB/SmolLM-135M), as bench/llama.bench.ts uses it. */
const SMOL_LM_135M = {
  model_type: 'llama', vocab_size: 49152, hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30, num_attention_heads: 9,
  num_key_value_heads: 3, rms_norm_eps: 1e-5, rope_theta: 10000, max_position_embeddings: 2048, tie_word_embeddings: true,
};

/** Writes a checkpoint folder of the config with deterministic values of realistic scale, one tensor at a time. */
function writeRandomCheckpoint(config: LlamaConfig): Promise<string> {
  return writeTimingCheckpoint(config, 'fedlora-threads-bench-');
}

interface Row { threads: number; msPerStep: number; tokensPerSecond: number; startSeconds: number; loss: number }

/** Times `steps` optimizer steps (after one warm-up step) of the real trainer on `threads` threads. */
async function timeTraining(dir: string, config: LlamaConfig, threads: number, batch: number, seq: number, steps: number, perThread?: number): Promise<Row> {
  // perThread: sequences per thread per forward pass; the step's batch is then reached by
  // gradient accumulation (the same step), which bounds the activations each wasm heap holds
  const micro = perThread === undefined ? batch : Math.min(batch, threads * perThread);
  if (batch % micro !== 0) throw new Error(`batch ${batch} is not a multiple of ${micro} (threads x sequences per thread)`);
  const { model: base } = await loadLlamaCheckpoint(dir, { hash: false });
  const model = LlamaLoraModel.attach(base, { targetModules: ['q_proj', 'v_proj'], variant: 'lora', rank: 8, alpha: 16, seed: 0 });
  const sequences = Array.from({ length: batch * (steps + 1) }, (_, i) => Int32Array.from({ length: seq + 1 }, (_, j) => (i * 7919 + j * 104729) % config.vocabSize));
  const source = tokenSource(sequences, seq, 0);
  const t0 = performance.now();
  const pool = threads > 1 ? await TrainWorkerPool.start({ threads, base: { kind: 'dir', modelDir: dir }, source }) : undefined;
  try {
    if (pool !== undefined) {
      const paths = [...model.modules().keys()];
      await pool.begin({ kind: 'build', lora: { variant: 'lora', rank: 8, alpha: 16, modules: paths, seed: 0 } }, model);
    }
    const startSeconds = (performance.now() - t0) / 1000;
    const stamps: number[] = [performance.now()];
    const result = await train(model, source, {
      batchSize: micro, gradAccumulation: batch / micro, maxSteps: steps + 1, lr: 1e-4, seed: 0, ...(pool !== undefined && { parallel: pool }),
      onProgress: () => stamps.push(performance.now()),
    });
    const times = stamps.slice(2).map((t, i) => t - stamps[i + 1]!); // the warm-up step left out
    const ms = median(times);
    return { threads, msPerStep: ms, tokensPerSecond: (batch * seq) / (ms / 1000), startSeconds, loss: result.losses.at(-1)! };
  } finally {
    await pool?.close();
    model.dispose();
  }
}

async function compare(label: string, config: LlamaConfig, threadCounts: number[], batch: number, seq: number, steps: number, perThread?: number): Promise<void> {
  const dir = await writeRandomCheckpoint(config);
  try {
    const per = perThread === undefined ? '' : ` (${perThread} sequence per thread per forward pass, gradient accumulation to the batch)`;
    console.log(`${label}: batch ${batch} x ${seq} tokens${per}, LoRA r 8 on q_proj, v_proj, AdamW, backend ${tf.getBackend()}, median of ${steps} steps after 1 warm-up`);
    const rows: Row[] = [];
    for (const t of threadCounts) {
      const loadBefore = os.loadavg()[0]!;
      const row = await timeTraining(dir, config, t, batch, seq, steps, perThread);
      rows.push(row);
      const one = rows.find((r) => r.threads === 1);
      const speedup = one === undefined ? NaN : row.tokensPerSecond / one.tokensPerSecond;
      console.log(`  ${String(t).padStart(2)} thread${t === 1 ? ' ' : 's'} ${row.msPerStep.toFixed(0).padStart(7)} ms/step ${row.tokensPerSecond.toFixed(0).padStart(7)} tokens/s` +
        `  speed-up ${speedup.toFixed(2)}x, efficiency ${(speedup / t).toFixed(2)}  (workers started in ${row.startSeconds.toFixed(1)} s; last loss ${row.loss.toFixed(4)}; load average before ${loadBefore.toFixed(1)})`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<void> {
  const cores = os.availableParallelism();
  const threadCounts = [...new Set((process.env['THREADS_BENCH_THREADS'] ?? `1,${cores}`).split(',').map((s) => Number(s.trim())))];
  if (threadCounts.some((t) => !Number.isInteger(t) || t < 1)) throw new Error(`THREADS_BENCH_THREADS must list positive integers, got ${process.env['THREADS_BENCH_THREADS']}`);
  const most = Math.max(...threadCounts);
  const batch = Number(process.env['THREADS_BENCH_BATCH'] ?? Math.max(4, 2 * most));
  const seq = Number(process.env['THREADS_BENCH_SEQ'] ?? 128);
  const steps = Number(process.env['THREADS_BENCH_STEPS'] ?? 3);
  await chooseBackend({ backend: 'wasm' });
  console.log(`${cores} cores available (os.availableParallelism); threads ${threadCounts.join(', ')}`);
  if (process.env['THREADS_BENCH_SMOL_ONLY'] !== '1') {
    await compare('bench llama (4 layers, hidden 256, byte vocabulary)', parseLlamaConfig(LLAMA_WORDNET_CONFIG_JSON), threadCounts, batch, seq, steps);
  }
  if (process.env['LLAMA_BENCH_SMOL'] === '1') {
    const smolBatch = Number(process.env['THREADS_BENCH_SMOL_BATCH'] ?? most);
    await compare('SmolLM-135M shape (30 layers, hidden 576, vocabulary 49,152)', parseLlamaConfig(SMOL_LM_135M), threadCounts, smolBatch, 128, Math.min(steps, 2), 1);
  }
  console.log(machineLine());
}
