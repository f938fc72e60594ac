/**
 * Worker-thread entry of worker-trainer.ts: loads the backend, the base model and the local data
 * once, then trains each round it is sent (round-handler.ts `trainRound`) and posts the update
 * payload back. Training blocks this thread's event loop for the whole round (client/train yields
 * only microtasks), which is why it runs here and not next to the agent's socket. An abort is a
 * flag in shared memory, read at every step, since no message can be read while training runs.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { reasonOf } from '../../shared/errors.js';
import type { Offer } from '../../shared/protocol/events.js';
import type { TrainProgress } from '../train/trainer.js';
import type { BackendName } from '../backends/types.js';

export interface TrainingWorkerSetup {
  readonly modelDir: string;
  readonly dataFile: string;
  readonly label?: string;
  readonly seqLen?: number;
  readonly backend?: BackendName;
  /** Threads that train data-parallel (client/train/train-worker-pool.ts): this one and threads - 1 more. @default 1 */
  readonly threads?: number;
  /** Int32Array(1) over a SharedArrayBuffer: non-zero aborts the round in training. */
  readonly abortFlag: SharedArrayBuffer;
}

export type TrainingWorkerMessage =
  | { type: 'ready'; threads: number; backend: { name: string; device: string; selfTest: { ok: boolean; maxError: number; reason?: string } } }
  | { type: 'start'; id: number; totalSteps: number }
  | { type: 'step'; id: number; progress: TrainProgress }
  | { type: 'done'; id: number; payload: Uint8Array; metrics: Record<string, number>; examples: number; steps: number; seconds: number; dp?: unknown; initRelease?: { noiseMultiplier: number; clipNorm: number } }
  /** `message`: the reason, without a code prefix (reasonOf); the code travels in `code` */
  | { type: 'error'; id: number; name: string; code?: string; message: string; details?: Record<string, unknown> }
  | { type: 'fatal'; code?: string; message: string };

const setup = workerData as TrainingWorkerSetup;
const post = (m: TrainingWorkerMessage): void => parentPort!.postMessage(m);
const abortFlag = new Int32Array(setup.abortFlag);

async function main(): Promise<void> {
  const [{ chooseBackend }, { loadBaseModel }, { loadLocalData }, { trainRound, RoundAborted }, { OfferSchema }] = await Promise.all([
    import('../backend.js'),
    import('./base-model.js'),
    import('./local-data.js'),
    import('./round-handler.js'),
    import('../../shared/protocol/events.js'),
  ]);
  const info = await chooseBackend(setup.backend === undefined ? {} : { backend: setup.backend });
  const model = await loadBaseModel(setup.modelDir);
  const data = await loadLocalData(setup.dataFile, model, { ...(setup.label !== undefined && { label: setup.label }), ...(setup.seqLen !== undefined && { seqLen: setup.seqLen }) });
  const { threadsForBackend, TrainWorkerPool } = await import('../train/train-worker-pool.js');
  const threads = Math.min(threadsForBackend(setup.threads ?? 1, info.name), data.examples);
  const pool = threads < 2 ? undefined : await TrainWorkerPool.start({ threads, base: { kind: 'dir', modelDir: setup.modelDir }, source: data.source });

  parentPort!.on('message', (m: { type: 'train'; id: number; offer: Offer }) => {
    if (m.type !== 'train') return;
    const controller = new AbortController();
    const check = (): void => {
      if (Atomics.load(abortFlag, 0) !== 0 && !controller.signal.aborted) controller.abort('the agent aborted the round');
    };
    void (async () => {
      try {
        const offer = OfferSchema.parse(m.offer);
        const trained = await trainRound(offer, model, data, {
          signal: controller.signal,
          onStart: (totalSteps) => {
            check();
            post({ type: 'start', id: m.id, totalSteps });
          },
          onStep: (progress) => {
            check();
            post({ type: 'step', id: m.id, progress });
          },
        }, pool);
        // Copied, not transferred: the payload may be a view into a pooled buffer this thread reuses.
        post({ type: 'done', id: m.id, payload: trained.payload, metrics: { ...trained.metrics }, examples: trained.examples, steps: trained.steps, seconds: trained.seconds, ...(trained.dp !== undefined && { dp: trained.dp }), ...(trained.initRelease !== undefined && { initRelease: trained.initRelease }) });
      } catch (e) {
        const err = e as Error & { code?: string; details?: Record<string, unknown> };
        post({ type: 'error', id: m.id, name: e instanceof RoundAborted ? 'RoundAborted' : err.name, ...(err.code !== undefined && { code: err.code }), message: reasonOf(e), ...(err.details !== undefined && { details: err.details }) });
      }
    })();
  });
  post({ type: 'ready', threads: pool?.threads ?? 1, backend: { name: info.name, device: info.device, selfTest: { ok: info.selfTest.ok, maxError: info.selfTest.maxError, ...(info.selfTest.reason !== undefined && { reason: info.selfTest.reason }) } } });
}

main().catch((e: unknown) => {
  const err = e as { code?: string };
  post({ type: 'fatal', ...(err.code !== undefined && { code: err.code }), message: reasonOf(e) });
});
