/**
 * A RoundTrainer (round-handler.ts) that trains in a worker thread (training-worker.ts), so the
 * agent's thread stays free for its socket: client/train's loop yields only microtasks, and a round
 * trained next to the socket leaves the coordinator's heartbeats unanswered, which disconnects the
 * client after socket.io's ping interval + timeout (25 s + 30 s) of training. The worker loads the
 * backend, the model and the data once; sealing stays on the agent's thread (keys never leave it).
 */
import { Worker } from 'node:worker_threads';
import { ERROR_CODES, FedloraError, type ErrorCode } from '../../shared/errors.js';
import type { Offer } from '../../shared/protocol/events.js';
import type { BackendName } from '../backends/types.js';
import type { ClientDpSettings } from './client-dp.js';
import { RoundAborted, type RoundTrainer, type TrainHooks, type TrainedRound } from './round-handler.js';
import type { TrainingWorkerMessage, TrainingWorkerSetup } from './training-worker.js';
import { workerEntryUrl } from '../../shared/worker-entry.js';

/**
 * The worker entry's URL. Under tsx or vitest the sources are TypeScript, which a Node 20 worker
 * cannot load by itself: the entry then registers tsx's loader first (a data: URL module), as
 * coordinator/engine/update-opener.ts does.
 */
function workerUrl(): URL {
  return workerEntryUrl(new URL('./training-worker.ts', import.meta.url));
}

interface Pending {
  readonly hooks: TrainHooks;
  readonly resolve: (r: TrainedRound) => void;
  readonly reject: (e: Error) => void;
}

export class WorkerTrainer implements RoundTrainer {
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private failure: Error | null = null;

  /** The worker's backend, as chooseBackend reported it there (name, device, self-test). */
  backend: { name: string; device: string; selfTest: { ok: boolean; maxError: number; reason?: string } } = { name: 'unknown', device: '', selfTest: { ok: false, maxError: NaN } };

  /** Threads the worker trains with (data-parallel, client/train/train-worker-pool.ts). */
  threads = 1;

  private constructor(
    private readonly worker: Worker,
    /** Int32Array(1) the worker reads at every step: non-zero aborts the round in training. */
    private readonly abortFlag: SharedArrayBuffer,
  ) {}

  /**
   * Starts the worker and waits until it has loaded the backend, the model and the data.
   * @throws the worker's FedloraError (a bad model folder or data file) when it cannot start
   */
  static async start(options: { modelDir: string; dataFile: string; label?: string; seqLen?: number; backend?: BackendName; threads?: number }): Promise<WorkerTrainer> {
    const abortFlag = new SharedArrayBuffer(4);
    const setup: TrainingWorkerSetup = { ...options, abortFlag };
    const worker = new Worker(workerUrl(), { workerData: setup });
    const trainer = new WorkerTrainer(worker, abortFlag);
    await new Promise<void>((resolve, reject) => {
      worker.once('error', reject);
      worker.on('message', (m: TrainingWorkerMessage) => {
        if (m.type === 'ready') {
          trainer.backend = m.backend;
          trainer.threads = m.threads;
          resolve();
        }
        else if (m.type === 'fatal') reject(asError('Error', m.code, m.message));
        else trainer.onMessage(m);
      });
    });
    worker.on('error', (e) => trainer.failAll(e));
    worker.on('exit', (code) => trainer.failAll(new FedloraError('FL_ERR_TRAINING', `the training worker exited (code ${code})`)));
    return trainer;
  }

  train(offer: Offer, hooks: TrainHooks): Promise<TrainedRound> {
    if (this.failure !== null) return Promise.reject(this.failure);
    const id = this.nextId++;
    const flag = new Int32Array(this.abortFlag);
    Atomics.store(flag, 0, 0);
    return new Promise<TrainedRound>((resolve, reject) => {
      this.pending.set(id, { hooks, resolve, reject });
      hooks.signal?.addEventListener('abort', () => Atomics.store(flag, 0, 1), { once: true });
      this.worker.postMessage({ type: 'train', id, offer });
    });
  }

  async close(): Promise<void> {
    this.failure ??= new FedloraError('FL_ERR_TRAINING', 'the training worker was closed');
    await this.worker.terminate();
  }

  private onMessage(m: TrainingWorkerMessage): void {
    if (m.type === 'ready' || m.type === 'fatal') return;
    const p = this.pending.get(m.id);
    if (p === undefined) return;
    if (m.type === 'start') p.hooks.onStart?.(m.totalSteps);
    else if (m.type === 'step') p.hooks.onStep?.(m.progress);
    else if (m.type === 'done') {
      this.pending.delete(m.id);
      p.resolve({
        payload: m.payload,
        metrics: m.metrics,
        examples: m.examples,
        steps: m.steps,
        seconds: m.seconds,
        ...(m.dp !== undefined && { dp: m.dp as { settings: ClientDpSettings; steps: number } }),
        ...(m.initRelease !== undefined && { initRelease: m.initRelease }),
      });
    } else {
      this.pending.delete(m.id);
      p.reject(m.name === 'RoundAborted' ? new RoundAborted(m.message) : asError(m.name, m.code, m.message, m.details));
    }
  }

  private failAll(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}

/** The worker's error as the agent would have seen it in-process: a FedloraError keeps its code. */
function asError(name: string, code: string | undefined, message: string, details: Record<string, unknown> = {}): Error {
  if (code !== undefined && code in ERROR_CODES) {
    return new FedloraError(code as ErrorCode, message, details);
  }
  const e = new Error(message);
  e.name = name;
  return e;
}
