/**
 * A full job with each strategy through a real coordinator (in-process, real SQLite file, real
 * socket.io) and three real client agents training a small mlp on digits shards (tfjs wasm).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readMlpCheckpoint } from '../../client/models/mlp-checkpoint.js';
import type { StrategyName } from '../../shared/protocol/job-spec.js';
import { makeAgent, mlpJob, startCoordinator, wasmBackend, writeBaseModel, writeDigitShards } from './harness.js';

let modelDir: string;
let sha256: string;
let shards: string[];

beforeAll(async () => {
  await wasmBackend();
  modelDir = await writeBaseModel();
  sha256 = (await readMlpCheckpoint(modelDir)).sha256;
  shards = await writeDigitShards(3, 48);
});

const running: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const stop of running) await stop();
});

describe.each(['fedavg', 'flora', 'ffa', 'fedsb'] as const)('a full job with %s', (strategy: StrategyName) => {
  it('completes every round with every client, committed in the store and reported to each agent', async () => {
    const { coordinator, api } = await startCoordinator();
    running.push(() => coordinator.stop());
    const jobId = await api.createJob(mlpJob(strategy, sha256, { training: { epochs: 1, batchSize: 16, lr: 0.05 } }));
    const clients = await Promise.all(shards.map(async (file) => makeAgent(api.url, jobId, await api.token(jobId), modelDir, file)));
    const summaries = await Promise.all(clients.map((c) => c.agent.run()));

    const job = await api.job(jobId);
    expect(job.status).toBe('completed');
    expect(job.round).toBe(2);
    expect(job.roundsDetail.map((r) => r.round)).toEqual([0, 1]);
    const ids = clients.map((c) => c.agent.id!).sort();
    for (const r of job.roundsDetail) {
      expect([...r.participants].sort()).toEqual(ids);
      expect(r.accepted).toBe(3);
      expect(r.refused).toBe(0);
      // examples = 3 shards x 48 rows; the metrics are the example-weighted means of the agents' metrics
      expect(r.metrics.examples).toBe(144);
      expect(r.metrics.loss).toBeGreaterThan(0);
      expect(r.metrics.accuracy).toBeGreaterThanOrEqual(0);
      expect(r.metrics.accuracy).toBeLessThanOrEqual(1);
    }
    // The global state carries the learning over: round 1 starts from round 0's aggregate, so its
    // mean training loss and its loss after training are lower than round 0's. (Observed margins,
    // 3 runs each: fedavg 0.04 / 0.10, flora 0.05 / 0.07, ffa 0.02 / 0.02, fedsb 0.002 / 0.003;
    // fedsb trains only the 2x2 R per module, hence its small but steady steps.)
    const [r0, r1] = job.roundsDetail;
    expect(r1!.metrics.train_loss).toBeLessThan(r0!.metrics.train_loss!);
    expect(r1!.metrics.loss).toBeLessThan(r0!.metrics.loss!);
    for (const s of summaries) {
      expect(s.status).toBe('completed');
      expect(s.jobRounds).toBe(2);
      expect(s.roundsTrained).toBe(2);
      expect(s.updatesAccepted).toBe(2);
      expect(s.updatesRefused).toEqual([]);
      expect(s.roundsFailed).toEqual([]);
      expect(s.lastRoundMetrics?.clients).toBe(3);
    }
    // The committed global adapter exports (PEFT tar) once the job has rounds.
    const adapter = await fetch(`${api.url}/api/jobs/${jobId}/adapter`, { headers: { authorization: `Bearer ${'e2e-admin-token-0123456789abcdef'}` } });
    expect(adapter.status).toBe(200);
    expect((await adapter.arrayBuffer()).byteLength).toBeGreaterThan(1024);
    await coordinator.stop();
    running.pop();
  });
});
