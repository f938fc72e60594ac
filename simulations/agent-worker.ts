/**
 * A worker thread hosting many light simulated clients. The worker chooses its own tfjs backend
 * (wasm: single-threaded under Node, so parallelism comes from running workers side by side),
 * loads the base model ONCE and shares it among all its agents (the mlp checkpoint stays in
 * memory; each agent builds a LoRA model only for a round it is offered and disposes it after),
 * and runs one real client agent (client/agent) per client over its own loopback socket.io
 * connection: real enrolment, real keys, real sealed and signed updates.
 *
 * Dropout: when a client starts training a round, with probability `dropout` (seeded by client
 * and round) it leaves at once (disconnects mid-round); it rejoins with its stored client id
 * when another client of this worker starts a later round, or after `rejoinMs`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { AgentSummary } from '../client/agent/summary.js';
import type { ClientAgent } from '../client/agent/agent.js';
import type { WorkerClient, WorkerInput, WorkerMessage } from './worker-protocol.js';

const input = workerData as WorkerInput;
const post = (m: WorkerMessage): void => parentPort!.postMessage(m);

async function main(): Promise<void> {
  const [{ chooseBackend }, { backendForHello }, { loadBaseModel }, { tableSource }, { ClientAgent }, { StateFolder }, { quietProgress }, { SeededRandom }] = await Promise.all([
    import('../client/backend.js'),
    import('../client/agent/handshake.js'),
    import('../client/agent/base-model.js'),
    import('../client/data/batches.js'),
    import('../client/agent/agent.js'),
    import('../client/agent/state-folder.js'),
    import('../client/agent/progress.js'),
    import('../client/data/seeded-random.js'),
  ]);
  const backend = backendForHello(await chooseBackend({ backend: input.backend }));
  const model = await loadBaseModel(input.modelDir);
  let highestRound = -1;
  const dropped = new Map<number, NodeJS.Timeout>();

  const start = (c: WorkerClient, first: boolean): void => {
    const data = {
      file: `client-${c.index}`,
      examples: c.labels.length,
      source: tableSource({ kind: 'classification', source: `client ${c.index}`, featureNames: input.featureNames, features: c.features, labels: c.labels, lines: new Int32Array(c.labels.length) }),
    };
    let agent: ClientAgent | null = null;
    const progress = {
      ...quietProgress(),
      roundStart(round: number) {
        post({ type: 'offer', client: c.index, round });
        if (round > highestRound) {
          highestRound = round;
          for (const [index, timer] of dropped) {
            clearTimeout(timer);
            dropped.delete(index);
            start(input.clients.find((x) => x.index === index)!, false);
          }
        }
        if (input.dropout > 0 && new SeededRandom(input.seed, `dropout:${c.index}:${round}`).nextFloat() < input.dropout) {
          post({ type: 'dropped', client: c.index, round });
          // leave from a macrotask: the agent is inside its offer handler now
          setImmediate(() => {
            agent?.stop(`simulated dropout in round ${round}`);
            dropped.set(c.index, setTimeout(() => {
              dropped.delete(c.index);
              start(c, false);
            }, input.rejoinMs));
          });
        }
      },
    };
    agent = new ClientAgent({
      coordinatorUrl: input.url,
      jobId: input.jobId,
      ...(first && { token: c.token }),
      state: StateFolder.open(c.stateDir),
      model,
      data,
      backend,
      progress,
      reconnect: { initialDelayMs: 100, maxDelayMs: 2000 },
    });
    agent.run().then(
      (summary: AgentSummary) => {
        for (const timer of dropped.values()) clearTimeout(timer);
        post({ type: 'summary', client: c.index, summary });
      },
      (e: unknown) => {
        const err = e as { code?: string; message?: string };
        // a stopped (dropped) agent rejects with FL_ERR_CONNECTION; it comes back later
        if (err.code === 'FL_ERR_CONNECTION' && /simulated dropout/.test(err.message ?? '')) return;
        post({ type: 'error', client: c.index, code: err.code ?? 'FL_ERR_INTERNAL', message: err.message ?? String(e) });
      },
    );
  };
  for (const c of input.clients) start(c, true);
  post({ type: 'started', clients: input.clients.length, backend: backend.name });
}

main().catch((e: unknown) => {
  const err = e as { code?: string; message?: string };
  post({ type: 'error', client: -1, code: err.code ?? 'FL_ERR_INTERNAL', message: err.message ?? String(e) });
});
