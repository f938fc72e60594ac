/**
 * Data-parallel training on the CPU: worker threads that compute the gradients of shards of each
 * batch. tfjs' wasm backend runs one thread in Node (tfjs turns wasm threads off there), so one
 * training process uses one core; with this pool, `threads` threads each run their own
 * single-threaded backend on their own copy of the model (base + LoRA) and of the examples.
 *
 * One step (the trainer, trainer.ts, drives it):
 *  1. the batch's indices are cut into S = min(threads, examples) contiguous shards; shard 0 is
 *     computed on the calling thread, shards 1..S-1 by the workers, at the same time;
 *  2. plain training: each shard's mean-loss gradient g_k comes back with its loss units u_k (the
 *     count the model's mean loss divides by: examples, or counted target tokens for a causal LM),
 *     and the batch gradient is sum_k (u_k / U) g_k, U = sum_k u_k: the gradient of the whole
 *     batch's mean loss, summed once, in float64, in shard order;
 *     DP-SGD: each shard's sum of per-example clipped gradients (dp-sgd.ts, unchanged: every
 *     worker clips its own examples) comes back, and the sums are added once, in shard order;
 *  3. the calling thread alone adds DP noise (once, to the sum), steps AdamW and keeps the moments;
 *     the new trainable values go to each worker with its next request (the broadcast).
 *
 * Why broadcast the new factors rather than step the same optimizer in every worker: it moves the
 * same bytes (the summed gradient would have to reach every worker instead), but the optimizer's
 * moments, the learning-rate schedule, the DP noise and its random source exist once, on one
 * thread, so the workers hold no state that could drift and the threads = 1 path is the same code.
 *
 * Tensor data crosses threads as transferable typed arrays (gradients as Float32Array, clipped
 * sums as Float64Array, as dp-sgd.ts makes them); nothing is read synchronously.
 */
import * as tf from '@tensorflow/tfjs';
import { Worker } from 'node:worker_threads';
import type { ModuleFactors } from '../../shared/adapter.js';
import { ERROR_CODES, FedloraError, type ErrorCode } from '../../shared/errors.js';
import type { Offer } from '../../shared/protocol/events.js';
import { workerEntryUrl } from '../../shared/worker-entry.js';
import type { LoraBuild } from '../agent/base-model.js';
import { disposeBatch, type ExampleSource, type SourceSpec } from '../data/batches.js';
import { readFactorsOf, type LoraModel, type TrainableModel } from '../lora/lora-model.js';
import type { MlpConfig } from '../models/mlp-config.js';
import { clippedGradientSum, type ClippedSum, type DpClip, type DpClipMode } from './dp-sgd.js';

/** Where the workers get their base model: a model folder, or an mlp checkpoint in memory. */
export type BaseSpec =
  | { readonly kind: 'dir'; readonly modelDir: string }
  | { readonly kind: 'mlp'; readonly checkpoint: { readonly config: MlpConfig; readonly weights: ReadonlyMap<string, Float32Array>; readonly sha256: string } };

/**
 * How the workers build a training run's LoRA model from their base: `build` (fedlora train:
 * variant, rank, alpha, module paths, seed), or `offer` (a round: round-handler.ts `startModel`,
 * which also performs FLoRA's merge into the base weights). Every factor is then set from the
 * calling thread's model, so the workers' models equal it.
 */
export type ModelRecipe =
  | { readonly kind: 'build'; readonly lora: LoraBuild }
  | { readonly kind: 'offer'; readonly offer: Offer };

/** workerData of train-worker.ts. */
export interface TrainWorkerSetup {
  readonly index: number;
  readonly backend: string;
  readonly base: BaseSpec;
  readonly source: SourceSpec;
}

export type TrainWorkerRequest =
  | { type: 'begin'; id: number; recipe: ModelRecipe; factors: Array<[string, ModuleFactors]>; shapes: number[][] }
  | { type: 'grad'; id: number; indices: Int32Array; params?: Float32Array[] }
  | { type: 'clip'; id: number; indices: Int32Array; clip: DpClip; mode: DpClipMode; chunk: number; params?: Float32Array[] }
  | { type: 'end'; id: number }
  | { type: 'memory'; id: number };

export type TrainWorkerReply =
  | { type: 'ready' }
  | { type: 'fatal'; code?: string; message: string }
  | { type: 'ok'; id: number; numTensors: number }
  | { type: 'grad'; id: number; grads: Float32Array[]; units: number; loss: number }
  | { type: 'clip'; id: number; sums: Float64Array[]; norms: number[]; unclipped: number; lossSum: number }
  /** `message`: the reason, without a code prefix (reasonOf); the code travels in `code` */
  | { type: 'error'; id: number; name: string; code?: string; message: string };

/** What the trainer needs of data-parallel workers (trainer.ts `TrainOptions.parallel`). */
export interface ParallelGradients {
  /** The gradient of the mean loss over the examples at `indices` (tensors the caller owns), and that loss. */
  meanGradient(model: TrainableModel, source: ExampleSource, indices: ArrayLike<number>): Promise<{ grads: tf.Tensor[]; loss: number }>;
  /** The per-example clipped gradient sum over `indices`, as dp-sgd.ts `clippedGradientSum` gives it. */
  clippedSum(model: TrainableModel, source: ExampleSource, indices: ArrayLike<number>, clip: DpClip, mode: DpClipMode, chunk: number): Promise<ClippedSum>;
  /** The trainable variables changed (an optimizer step): the workers get the new values with their next request. */
  parametersChanged(): void;
}

/** Units the model's mean loss divides by: examples, or counted target tokens (causal LM). */
export async function lossUnits(model: TrainableModel, batch: { inputs: tf.Tensor; mask?: tf.Tensor }): Promise<number> {
  if (model.task === 'classification') return batch.inputs.shape[0]!;
  if (batch.mask === undefined) return batch.inputs.shape[0]! * batch.inputs.shape[1]!;
  const s = tf.sum(batch.mask);
  const units = (await s.data())[0]!;
  s.dispose();
  return units;
}

/** `indices` cut into `parts` contiguous shards whose sizes differ by at most one. */
export function shardIndices(indices: ArrayLike<number>, parts: number): Int32Array[] {
  const n = indices.length;
  const all = Int32Array.from(indices as ArrayLike<number>);
  const out: Int32Array[] = [];
  let start = 0;
  for (let k = 0; k < parts; k++) {
    const size = Math.floor(n / parts) + (k < n % parts ? 1 : 0);
    out.push(all.slice(start, start + size));
    start += size;
  }
  return out;
}

/** The thread count `--threads` asks for: a positive integer. */
/**
 * The threads that actually train on a backend: data-parallel workers exist for the single-threaded
 * CPU backends (wasm, cpu). A GPU backend (webgpu, tensorflow) trains on one thread: more would put
 * one more model copy and one more device per thread on the same GPU for no gain.
 */
export function threadsForBackend(requested: number, backend: string): number {
  return backend === 'wasm' || backend === 'cpu' ? requested : 1;
}

export function parseThreads(value: string | number, flag = '--threads'): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isInteger(n) || n < 1) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `${flag} must be a positive integer, got ${String(value)}`);
  return n;
}

interface Pending { resolve: (m: TrainWorkerReply) => void; reject: (e: Error) => void }

/** One worker thread and its requests in flight. */
class PoolWorker {
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  failure: Error | null = null;
  /** The parameter version the worker holds (see TrainWorkerPool.version). */
  synced = -1;

  constructor(readonly index: number, readonly worker: Worker) {}

  request(m: DistributiveOmit<TrainWorkerRequest, 'id'>, transfer: ArrayBuffer[] = []): Promise<TrainWorkerReply> {
    if (this.failure !== null) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<TrainWorkerReply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...m, id }, transfer);
    });
  }

  onReply(m: TrainWorkerReply): void {
    if (m.type === 'ready' || m.type === 'fatal') return;
    const p = this.pending.get(m.id);
    if (p === undefined) return;
    this.pending.delete(m.id);
    if (m.type === 'error') p.reject(workerError(this.index, m.code, m.message));
    else p.resolve(m);
  }

  fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
  }
}

type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;

/** A worker's error as a FedloraError: its own code when it had one, else FL_ERR_TRAINING. */
function workerError(index: number, code: string | undefined, message: string): FedloraError {
  const known = code !== undefined && code in ERROR_CODES ? code as ErrorCode : undefined;
  return new FedloraError(known ?? 'FL_ERR_TRAINING', `train worker ${index}: ${message}`, { worker: index });
}

export interface TrainWorkerPoolOptions {
  /** Threads in all, the calling one included: threads - 1 workers are started. */
  readonly threads: number;
  readonly base: BaseSpec;
  /** The training examples; must carry a `spec` (tableSource / tokenSource do). */
  readonly source: ExampleSource;
  /** The workers' backend. @default the calling thread's (tf.getBackend()) */
  readonly backend?: string;
}

export class TrainWorkerPool implements ParallelGradients {
  private model: LoraModel | null = null;
  /** Bumped at every optimizer step; a worker whose `synced` differs gets the values first. */
  private version = 0;
  private params: Promise<Float32Array[]> | null = null;
  private closed = false;

  private constructor(private readonly workers: PoolWorker[], private readonly sourceSize: number) {}

  /** Threads in all, the calling one included. */
  get threads(): number {
    return this.workers.length + 1;
  }

  /**
   * Starts threads - 1 workers and waits until each has its backend, base model and examples.
   * @throws FL_ERR_INVALID_ARGUMENT for threads < 2 or a source without a spec; a worker's own
   *   coded error (a bad model folder: FL_ERR_MODEL_CONFIG, ...) when one cannot start
   */
  static async start(o: TrainWorkerPoolOptions): Promise<TrainWorkerPool> {
    const threads = parseThreads(o.threads, 'threads');
    if (threads < 2) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `a train worker pool needs threads >= 2, got ${threads} (1 thread trains without one)`);
    if (o.source.spec === undefined) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', 'data-parallel training needs a source that can be rebuilt in a worker (tableSource or tokenSource)');
    const backend = o.backend ?? tf.getBackend();
    const url = workerEntryUrl(new URL('./train-worker.ts', import.meta.url));
    const workers: PoolWorker[] = [];
    const ready: Array<Promise<void>> = [];
    for (let i = 1; i < threads; i++) {
      const setup: TrainWorkerSetup = { index: i, backend, base: o.base, source: o.source.spec };
      const w = new PoolWorker(i, new Worker(url, { workerData: setup }));
      workers.push(w);
      ready.push(new Promise<void>((resolve, reject) => {
        w.worker.on('message', (m: TrainWorkerReply) => {
          if (m.type === 'ready') resolve();
          else if (m.type === 'fatal') reject(workerError(i, m.code, m.message));
          else w.onReply(m);
        });
        w.worker.on('error', (e) => {
          const err = new FedloraError('FL_ERR_TRAINING', `train worker ${i} failed: ${e.message}`, { worker: i }, { cause: e });
          w.fail(err);
          reject(err);
        });
        w.worker.on('exit', (code) => {
          const err = new FedloraError('FL_ERR_TRAINING', `train worker ${i} exited (code ${code})`, { worker: i });
          w.fail(err);
          reject(err);
        });
      }));
    }
    const pool = new TrainWorkerPool(workers, o.source.size);
    const settled = await Promise.allSettled(ready);
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed !== undefined) {
      await pool.close();
      throw failed.reason as Error;
    }
    return pool;
  }

  /**
   * Builds each worker's model for a training run and sets every factor (frozen ones included)
   * from `model`, the calling thread's, which shard 0 and the optimizer use.
   */
  async begin(recipe: ModelRecipe, model: LoraModel): Promise<void> {
    this.assertOpen();
    const factors = [...(await readFactorsOf(model.modules(), 'all'))];
    const shapes = model.trainableVariables().map((v) => [...v.shape]);
    await Promise.all(this.workers.map((w) => w.request({ type: 'begin', recipe, factors, shapes })));
    this.model = model;
    this.version = 0;
    this.params = null;
    for (const w of this.workers) w.synced = 0;
  }

  /**
   * Frees each worker's model.
   * @returns each worker's tf.memory().numTensors afterwards
   */
  async end(): Promise<number[]> {
    this.model = null;
    if (this.closed) return [];
    const replies = await Promise.all(this.workers.map((w) => w.request({ type: 'end' })));
    return replies.map((r) => (r as { numTensors: number }).numTensors);
  }

  /** Each worker's tf.memory().numTensors. */
  async memory(): Promise<number[]> {
    this.assertOpen();
    const replies = await Promise.all(this.workers.map((w) => w.request({ type: 'memory' })));
    return replies.map((r) => (r as { numTensors: number }).numTensors);
  }

  parametersChanged(): void {
    this.version += 1;
    this.params = null;
  }

  async meanGradient(model: TrainableModel, source: ExampleSource, indices: ArrayLike<number>): Promise<{ grads: tf.Tensor[]; loss: number }> {
    const vars = this.check(model, source);
    const shards = shardIndices(indices, Math.min(this.threads, indices.length));
    const replies = await this.dispatch(shards, vars, (indices, params) => ({ type: 'grad', indices, ...(params !== undefined && { params }) }));
    // shard 0 on this thread, while the workers compute theirs
    const own = await this.ownGradient(model, source, vars, shards[0]!);
    const parts = [own, ...(await Promise.all(replies)).map((r) => r as Extract<TrainWorkerReply, { type: 'grad' }>)];
    const total = parts.reduce((t, p) => t + p.units, 0);
    const sums = vars.map((v) => new Float64Array(v.size));
    let loss = 0;
    if (total > 0) {
      for (const p of parts) {
        const w = p.units / total;
        loss += w * p.loss;
        p.grads.forEach((g, i) => {
          const into = sums[i]!;
          for (let j = 0; j < g.length; j++) into[j] = into[j]! + w * g[j]!;
        });
      }
    }
    return { grads: vars.map((v, i) => tf.tensor(Float32Array.from(sums[i]!), v.shape)), loss };
  }

  async clippedSum(model: TrainableModel, source: ExampleSource, indices: ArrayLike<number>, clip: DpClip, mode: DpClipMode, chunk: number): Promise<ClippedSum> {
    const vars = this.check(model, source);
    const shards = shardIndices(indices, Math.min(this.threads, indices.length));
    const replies = await this.dispatch(shards, vars, (indices, params) => ({ type: 'clip', indices, clip, mode, chunk, ...(params !== undefined && { params }) }));
    const own = await clippedGradientSum(model, source, shards[0]!, clip, mode, chunk);
    const parts: ClippedSum[] = [own, ...(await Promise.all(replies)).map((r) => r as Extract<TrainWorkerReply, { type: 'clip' }>)];
    const sums = vars.map((v) => new Float64Array(v.size));
    const norms: number[] = [];
    let unclipped = 0;
    let lossSum = 0;
    for (const p of parts) {
      p.sums.forEach((s, i) => {
        const into = sums[i]!;
        for (let j = 0; j < s.length; j++) into[j] = into[j]! + s[j]!;
      });
      norms.push(...p.norms);
      unclipped += p.unclipped;
      lossSum += p.lossSum;
    }
    return { sums, norms, unclipped, lossSum };
  }

  /** Stops the workers. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.workers) w.fail(new FedloraError('FL_ERR_TRAINING', 'the train worker pool was closed'));
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }

  private assertOpen(): void {
    if (this.closed) throw new FedloraError('FL_ERR_TRAINING', 'the train worker pool was closed');
  }

  private check(model: TrainableModel, source: ExampleSource): tf.Variable[] {
    this.assertOpen();
    if (this.model === null || model !== this.model) throw new FedloraError('FL_ERR_TRAINING', 'the train worker pool was not begun for this model (call begin first)');
    if (source.size !== this.sourceSize) throw new FedloraError('FL_ERR_TRAINING', `the train workers hold ${this.sourceSize} examples, the trainer's source ${source.size}: not the same data`);
    return model.trainableVariables();
  }

  /**
   * Sends shards 1..S-1 to the workers, each with the current trainable values when it lacks
   * them; resolves once every request is posted (so shard 0 starts after them) with the replies.
   */
  private async dispatch(
    shards: Int32Array[], vars: tf.Variable[],
    make: (indices: Int32Array, params: Float32Array[] | undefined) => DistributiveOmit<TrainWorkerRequest, 'id'>,
  ): Promise<Array<Promise<TrainWorkerReply>>> {
    const params = await Promise.all(shards.slice(1).map((_, k) => this.paramsFor(this.workers[k]!, vars)));
    return shards.slice(1).map((idx, k) => {
      const reply = this.workers[k]!.request(make(idx, params[k]), params[k]?.map((p) => p.buffer as ArrayBuffer) ?? []);
      // handled where it is awaited; this keeps a failure that arrives while shard 0 runs from being an unhandled rejection
      reply.catch(() => undefined);
      return reply;
    });
  }

  /** The current trainable values for a worker that lacks them (a fresh copy each: they are transferred). */
  private async paramsFor(w: PoolWorker, vars: tf.Variable[]): Promise<Float32Array[] | undefined> {
    if (w.synced === this.version) return undefined;
    const version = this.version;
    this.params ??= Promise.all(vars.map((v) => v.data() as Promise<Float32Array>));
    const values = await this.params;
    w.synced = version;
    return values.map((v) => v.slice());
  }

  private async ownGradient(model: TrainableModel, source: ExampleSource, vars: tf.Variable[], idx: Int32Array): Promise<{ grads: Float32Array[]; units: number; loss: number }> {
    const batch = source.batch(idx);
    try {
      const units = await lossUnits(model, batch);
      const { value, grads } = tf.variableGrads(() => model.loss(batch), vars);
      const arrays = await Promise.all(vars.map((v) => grads[v.name]!.data() as Promise<Float32Array>));
      const loss = (await value.data())[0]!;
      tf.dispose([value, ...Object.values(grads)]);
      return { grads: arrays, units, loss };
    } finally {
      disposeBatch(batch);
    }
  }
}
