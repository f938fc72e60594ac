/**
 * The simulated clients: W worker threads (agent-worker.ts), each with its own tfjs backend and
 * one shared copy of the base model, started once and reused by every job of a sim. A job's N
 * clients are dealt round-robin over the workers; `runJob` resolves when every client has ended
 * (a summary from each, or an error).
 */
import { Worker } from 'node:worker_threads';
import type { AgentSummary } from '../client/agent/summary.js';
import { ERROR_CODES, FedloraError, type ErrorCode } from '../shared/errors.js';
import type { BaselineOutcome, WorkerBaseline, WorkerClient, WorkerCommitted, WorkerJob, WorkerMessage, WorkerSetup } from './worker-protocol.js';
import { workerEntryUrl } from '../shared/worker-entry.js';

/** Under tsx or vitest the sources are TypeScript, which a Node 20 worker cannot load by itself: register tsx first (as coordinator/engine/update-opener.ts does). */
function workerUrl(): URL {
  return workerEntryUrl(new URL('./agent-worker.ts', import.meta.url));
}

export interface JobResult {
  readonly summaries: Map<number, AgentSummary>;
  readonly errors: Array<{ client: number; code: string; message: string }>;
  /** Rounds the clients started training. */
  readonly offers: number;
  /** Client-rounds left by simulated dropout. */
  readonly dropped: number;
}

export class ClientPool {
  private constructor(private readonly workers: Worker[]) {}

  /**
   * Starts `size` workers and waits until each has its backend and the base model.
   * @throws FL_ERR_INTERNAL naming the failure when a worker cannot start
   */
  static async start(setup: WorkerSetup, size: number): Promise<ClientPool> {
    const workers = Array.from({ length: Math.max(1, size) }, () => new Worker(workerUrl(), { workerData: setup }));
    try {
      await Promise.all(
        workers.map(
          (w) =>
            new Promise<void>((resolve, reject) => {
              const onMessage = (m: WorkerMessage): void => {
                if (m.type === 'ready') resolve();
                else if (m.type === 'fatal') reject(new FedloraError('FL_ERR_INTERNAL', `a sim worker failed to start: ${m.code}: ${m.message}`));
                else return;
                w.off('message', onMessage);
              };
              w.on('message', onMessage);
              w.once('error', reject);
            }),
        ),
      );
    } catch (e) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw e;
    }
    return new ClientPool(workers);
  }

  get size(): number {
    return this.workers.length;
  }

  /** Runs one job's clients until each has ended. */
  /** @param onNote an agent's failure or refusal line */
  async runJob(job: Omit<WorkerJob, 'type' | 'clients'>, clients: readonly WorkerClient[], onNote: (client: number, line: string) => void = () => undefined): Promise<JobResult> {
    const summaries = new Map<number, AgentSummary>();
    const errors: JobResult['errors'] = [];
    let offers = 0;
    let dropped = 0;
    const groups: WorkerClient[][] = this.workers.map(() => []);
    clients.forEach((c, i) => groups[i % groups.length]!.push(c));
    await Promise.all(
      this.workers.map((worker, w) => {
        const group = groups[w]!;
        if (group.length === 0) return Promise.resolve();
        return new Promise<void>((resolve, reject) => {
          let ended = 0;
          const cleanup = (): void => {
            worker.off('message', onMessage);
            worker.off('exit', onExit);
          };
          const onMessage = (m: WorkerMessage): void => {
            if (!('jobId' in m) || m.jobId !== job.jobId) return;
            if (m.type === 'offer') offers++;
            else if (m.type === 'note') onNote(m.client, m.line);
            else if (m.type === 'dropped') dropped++;
            else if (m.type === 'summary' || m.type === 'error' || m.type === 'left') {
              if (m.type === 'summary') summaries.set(m.client, m.summary);
              else if (m.type === 'error') {
                errors.push({ client: m.client, code: m.code, message: m.message });
                onNote(m.client, `agent stopped: ${m.code}: ${m.message}`);
              }
              if (++ended === group.length) {
                cleanup();
                resolve();
              }
            }
          };
          const onExit = (code: number): void => {
            cleanup();
            reject(new FedloraError('FL_ERR_INTERNAL', `a sim worker exited (code ${code}) with ${group.length - ended} clients of job ${job.jobId} still running`));
          };
          worker.on('message', onMessage);
          worker.on('exit', onExit);
          const message: WorkerJob = { type: 'job', ...job, clients: group };
          worker.postMessage(message, group.flatMap((c) => [c.features.buffer, c.labels.buffer, ...(c.sequences === undefined ? [] : [c.sequences.ids.buffer, c.sequences.offsets.buffer])]) as ArrayBuffer[]);
        });
      }),
    );
    return { summaries, errors, offers, dropped };
  }

  /**
   * Runs baselines (the language task's local-only and centralised LoRA) on the workers, each
   * worker taking the next task when it is free; the results come back in the tasks' order.
   * @throws FL_ERR_INTERNAL (or the worker's code) when a task fails
   */
  async runBaselines(tasks: ReadonlyArray<Omit<WorkerBaseline, 'type' | 'id'>>, onDone: (index: number, outcome: BaselineOutcome) => void = () => undefined): Promise<BaselineOutcome[]> {
    const results: BaselineOutcome[] = new Array<BaselineOutcome>(tasks.length);
    let next = 0;
    await Promise.all(
      this.workers.map(async (worker) => {
        while (next < tasks.length) {
          const id = next++;
          results[id] = await new Promise<BaselineOutcome>((resolve, reject) => {
            const onMessage = (m: WorkerMessage): void => {
              if ((m.type !== 'baseline-done' && m.type !== 'baseline-error') || m.id !== id) return;
              worker.off('message', onMessage);
              worker.off('exit', onExit);
              if (m.type === 'baseline-done') resolve(m.outcome);
              else reject(new FedloraError(m.code in ERROR_CODES ? (m.code as ErrorCode) : 'FL_ERR_INTERNAL', `baseline ${id}: ${m.message}`));
            };
            const onExit = (code: number): void => {
              worker.off('message', onMessage);
              reject(new FedloraError('FL_ERR_INTERNAL', `a sim worker exited (code ${code}) during baseline ${id}`));
            };
            worker.on('message', onMessage);
            worker.on('exit', onExit);
            const message: WorkerBaseline = { type: 'baseline', id, ...tasks[id]! };
            worker.postMessage(message);
          });
          onDone(id, results[id]);
        }
      }),
    );
    return results;
  }

  /** Tells every worker that a round of the job committed (dropped clients rejoin). */
  roundCommitted(jobId: string, round: number): void {
    const m: WorkerCommitted = { type: 'committed', jobId, round };
    for (const w of this.workers) w.postMessage(m);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
