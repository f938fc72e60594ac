/**
 * A worker thread hosting many light simulated clients. The worker chooses its own tfjs backend
 * once (wasm: single-threaded under Node, so parallelism comes from running workers side by
 * side), loads the base model ONCE and shares it among all its agents and jobs (the mlp
 * checkpoint stays in memory; an agent builds a LoRA model only for a round it is offered and
 * disposes it after, so idle clients hold only their data, keys and socket), and runs one real
 * client agent (client/agent) per client over its own loopback socket.io connection: real
 * enrolment, real keys, real sealed and signed updates.
 *
 * Dropout: when a client starts training a round, with probability `dropout` (seeded by client
 * and round) it leaves at once (disconnects mid-round); it rejoins with its stored client id when
 * the driver says the round has committed (in time for the next round's selection, which waits
 * for late clients during the coordinator's start grace), or after `rejoinMs`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { reasonOf } from '../shared/errors.js';
import type { AgentSummary } from '../client/agent/summary.js';
import type { ClientAgent } from '../client/agent/agent.js';
import type { ExampleSource } from '../client/data/batches.js';
import type { WorkerBaseline, WorkerClient, WorkerCommitted, WorkerJob, WorkerMessage, WorkerSetup } from './worker-protocol.js';

const setup = workerData as WorkerSetup;
const post = (m: WorkerMessage): void => parentPort!.postMessage(m);

async function main(): Promise<void> {
  const [{ chooseBackend }, { backendForHello }, { loadBaseModel }, { tableSource, tokenSource }, { ClientAgent }, { StateFolder }, { quietProgress }, { SeededRandom }, { unpackSequences }] = await Promise.all([
    import('../client/backend.js'),
    import('../client/agent/handshake.js'),
    import('../client/agent/base-model.js'),
    import('../client/data/batches.js'),
    import('../client/agent/agent.js'),
    import('../client/agent/state-folder.js'),
    import('../client/agent/progress.js'),
    import('../client/data/seeded-random.js'),
    import('./token-sequences.js'),
  ]);
  const backend = backendForHello(await chooseBackend({ backend: setup.backend }));
  const model = await loadBaseModel(setup.modelDir);

  const runJob = (job: WorkerJob): void => {
    const dropped = new Map<number, NodeJS.Timeout>();
    const droppedRounds = new Set<string>();
    const start = (c: WorkerClient, first: boolean): void => {
      let source: ExampleSource;
      let examples: number;
      if (c.sequences !== undefined && job.tokens !== undefined) {
        examples = c.sequences.offsets.length - 1;
        source = tokenSource(unpackSequences(c.sequences), job.tokens.seqLen, job.tokens.padId);
      } else {
        examples = c.labels.length;
        source = tableSource({ kind: 'classification', source: `client ${c.index}`, featureNames: job.featureNames, features: c.features, labels: c.labels, lines: new Int32Array(c.labels.length) });
      }
      const data = { file: `client-${c.index}`, examples, source };
      let agent: ClientAgent | null = null;
      const progress = {
        // failures and refusals go to the driver's log; the rest of the agent's lines are dropped
        ...quietProgress((line) => {
          if (/\b(failed|refused|error)\b/i.test(line)) post({ type: 'note', jobId: job.jobId, client: c.index, line: line.split('\n')[0]! });
        }),
        roundStart(round: number) {
          post({ type: 'offer', jobId: job.jobId, client: c.index, round });
          // The draw is per (client, round): a client that rejoins and is offered the same round again stays out of it.
          if (job.dropout > 0 && new SeededRandom(job.seed, `dropout:${c.index}:${round}`).nextFloat() < job.dropout) {
            if (!droppedRounds.has(`${c.index}:${round}`)) post({ type: 'dropped', jobId: job.jobId, client: c.index, round });
            droppedRounds.add(`${c.index}:${round}`);
            // Leave now, before the first step: stopping aborts the round's signal, so the training
            // that called us can never seal and send (leaving from a later macrotask raced a fast
            // round to the socket and the drop did not happen).
            agent?.stop(`simulated dropout in round ${round}`);
            dropped.set(
              c.index,
              setTimeout(() => {
                dropped.delete(c.index);
                start(c, false);
              }, job.rejoinMs),
            );
          }
        },
      };
      agent = new ClientAgent({
        coordinatorUrl: job.url,
        jobId: job.jobId,
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
          post({ type: 'summary', jobId: job.jobId, client: c.index, summary });
          // the job has ended: clients still out after a dropout will not come back
          for (const [index, timer] of dropped) {
            clearTimeout(timer);
            post({ type: 'left', jobId: job.jobId, client: index });
          }
          dropped.clear();
        },
        (e: unknown) => {
          const err = e as { code?: string; message?: string };
          // a stopped (dropped) agent rejects with FL_ERR_CONNECTION; it comes back later
          if (err.code === 'FL_ERR_CONNECTION' && /simulated dropout/.test(err.message ?? '')) return;
          post({ type: 'error', jobId: job.jobId, client: c.index, code: err.code ?? 'FL_ERR_INTERNAL', message: reasonOf(e) });
        },
      );
    };
    for (const c of job.clients) start(c, true);
    rejoinAll.set(job.jobId, () => {
      for (const [index, timer] of dropped) {
        clearTimeout(timer);
        dropped.delete(index);
        start(job.clients.find((x) => x.index === index)!, false);
      }
    });
  };
  /** Per job: bring back every dropped client (a round has committed, so the next one may include them). */
  const rejoinAll = new Map<string, () => void>();

  const runBaseline = async (b: WorkerBaseline): Promise<void> => {
    const [{ train }, { evaluatePerplexity }] = await Promise.all([import('../client/train/trainer.js'), import('./perplexity.js')]);
    const t0 = performance.now();
    const lora = await model.build({ variant: 'lora', rank: b.lora.rank, alpha: b.lora.alpha, modules: b.lora.modules, seed: b.lora.seed });
    try {
      const source = tokenSource(unpackSequences(b.train), b.tokens.seqLen, b.tokens.padId);
      let steps = 0;
      let trainLoss = Number.NaN;
      for (let round = 0; round < b.training.rounds; round++) {
        const r = await train(lora, source, { epochs: b.training.epochs, batchSize: b.training.batchSize, lr: b.training.lr, seed: b.lora.seed + round + 1 });
        steps += r.steps;
        trainLoss = r.losses.reduce((a, x) => a + x, 0) / Math.max(1, r.losses.length);
      }
      const tests = b.tests.map((t) => ({ name: t.name, source: tokenSource(unpackSequences(t.sequences), b.tokens.seqLen, b.tokens.padId) }));
      const result = await evaluatePerplexity(lora, tests);
      post({ type: 'baseline-done', id: b.id, outcome: { result, steps, trainLoss, seconds: (performance.now() - t0) / 1000 } });
    } finally {
      lora.dispose();
    }
  };

  parentPort!.on('message', (m: WorkerJob | WorkerCommitted | WorkerBaseline) => {
    if (m.type === 'job') runJob(m);
    else if (m.type === 'baseline') {
      runBaseline(m).catch((e: unknown) => {
        const err = e as { code?: string };
        post({ type: 'baseline-error', id: m.id, code: err.code ?? 'FL_ERR_INTERNAL', message: reasonOf(e) });
      });
    } else rejoinAll.get(m.jobId)?.();
  });
  post({ type: 'ready', backend: backend.name });
}

main().catch((e: unknown) => {
  const err = e as { code?: string };
  post({ type: 'fatal', code: err.code ?? 'FL_ERR_INTERNAL', message: reasonOf(e) });
});
