/**
 * The simulated clients of one job: N real client agents spread over W worker threads
 * (agent-worker.ts), each worker with its own tfjs backend and one shared copy of the base model.
 * `run()` resolves when every client has ended (a summary from each, or an error).
 */
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AgentSummary } from '../client/agent/summary.js';
import { FedloraError } from '../shared/errors.js';
import type { WorkerClient, WorkerInput, WorkerMessage } from './worker-protocol.js';

/** Under tsx or vitest the sources are TypeScript, which a Node 20 worker cannot load by itself: register tsx first (as coordinator/engine/update-opener.ts does). */
function workerUrl(): URL {
  const entry = new URL('./agent-worker.ts', import.meta.url);
  const tsxDir = dirname(createRequire(import.meta.url).resolve('tsx/package.json'));
  const api = pathToFileURL(join(tsxDir, 'dist/esm/api/index.mjs')).href;
  const code = `import { register } from ${JSON.stringify(api)}; register(); await import(${JSON.stringify(entry.href)});`;
  return new URL(`data:text/javascript,${encodeURIComponent(code)}`);
}

export interface PoolEvents {
  onOffer?(client: number, round: number): void;
  onDropped?(client: number, round: number): void;
}

export interface PoolResult {
  readonly summaries: Map<number, AgentSummary>;
  readonly errors: Array<{ client: number; code: string; message: string }>;
  readonly offers: number;
  readonly dropped: number;
}

/**
 * Starts the workers and runs the clients until each has ended.
 * @param workers threads; clients are dealt round-robin
 */
export async function runClientPool(base: Omit<WorkerInput, 'clients'>, clients: readonly WorkerClient[], workers: number, events: PoolEvents = {}): Promise<PoolResult> {
  const summaries = new Map<number, AgentSummary>();
  const errors: PoolResult['errors'] = [];
  let offers = 0;
  let dropped = 0;
  const groups: WorkerClient[][] = Array.from({ length: Math.max(1, Math.min(workers, clients.length)) }, () => []);
  clients.forEach((c, i) => groups[i % groups.length]!.push(c));
  const threads: Worker[] = [];
  try {
    await Promise.all(
      groups.map(
        (group) =>
          new Promise<void>((resolve, reject) => {
            const input: WorkerInput = { ...base, clients: group };
            const transfer = group.flatMap((c) => [c.features.buffer, c.labels.buffer]) as ArrayBuffer[];
            const worker = new Worker(workerUrl(), { workerData: input, transferList: transfer });
            threads.push(worker);
            let ended = 0;
            const endOne = (): void => {
              if (++ended === group.length) resolve();
            };
            worker.on('message', (m: WorkerMessage) => {
              if (m.type === 'offer') {
                offers++;
                events.onOffer?.(m.client, m.round);
              } else if (m.type === 'dropped') {
                dropped++;
                events.onDropped?.(m.client, m.round);
              } else if (m.type === 'summary') {
                summaries.set(m.client, m.summary);
                endOne();
              } else if (m.type === 'error') {
                if (m.client < 0) reject(new FedloraError('FL_ERR_INTERNAL', `a sim worker failed to start: ${m.code}: ${m.message}`));
                errors.push({ client: m.client, code: m.code, message: m.message });
                endOne();
              }
            });
            worker.once('error', reject);
            worker.once('exit', (code) => {
              if (ended < group.length) reject(new FedloraError('FL_ERR_INTERNAL', `a sim worker exited (code ${code}) with ${group.length - ended} clients still running`));
            });
          }),
      ),
    );
  } finally {
    await Promise.all(threads.map((t) => t.terminate()));
  }
  return { summaries, errors, offers, dropped };
}
