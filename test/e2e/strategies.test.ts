/**
 * A full job with each strategy through a real coordinator (in-process, real SQLite file, real
 * socket.io) and three real client agents training a small mlp on digits shards (tfjs wasm).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StrategyName } from '../../shared/protocol/job-spec.js';
import { decodeGlobalState } from '../../coordinator/state-codec.js';
import { inProcessTrainer, type RoundTrainer } from '../../client/agent/round-handler.js';
import { loadBaseModel } from '../../client/agent/base-model.js';
import { loadLocalData } from '../../client/agent/local-data.js';
import { parsePeftTensorName } from '../../shared/adapter.js';
import { decodeSafetensors } from '../../shared/safetensors/index.js';
import { makeAgent, mlpFixture, mlpJob, startCoordinator, startRun, writeDigitShards } from './harness.js';

let modelDir: string;
let sha256: string;
let shards: string[];

beforeAll(async () => {
  ({ modelDir, sha256, shards } = await mlpFixture(3, 48));
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

describe.each(['fedavg', 'ffa', 'fedsb'] as const)('%s: the committed global state is the example-weighted mean of what the agents sent', (strategy) => {
  it('matches a float64 mean of the agents\' own update payloads (shards of 30, 48 and 66 examples)', async () => {
    const files = await writeDigitShards(3, [30, 48, 66]);
    const { coordinator, api } = await startCoordinator();
    try {
      const jobId = await api.createJob(mlpJob(strategy, sha256, { rounds: 1 }));
      const sent: Array<{ payload: Uint8Array; examples: number }> = [];
      const clients = await Promise.all(
        files.map(async (file) => {
          const model = await loadBaseModel(modelDir);
          // The agent's own trainer, recording each payload it returns for sealing.
          const inner = inProcessTrainer(model, await loadLocalData(file, model));
          const trainer: RoundTrainer = {
            train: async (offer, hooks) => {
              const trained = await inner.train(offer, hooks);
              sent.push({ payload: trained.payload, examples: trained.examples });
              return trained;
            },
            close: () => inner.close(),
          };
          return makeAgent(api.url, jobId, await api.token(jobId), modelDir, file, { trainer });
        }),
      );
      await Promise.all(clients.map((c) => startRun(c.agent)));
      expect(sent.map((s) => s.examples).sort((a, b) => a - b)).toEqual([30, 48, 66]);
      const state = decodeGlobalState(coordinator.store.latestState(jobId)!);
      const total = sent.reduce((t, s) => t + s.examples, 0);
      const decoded = sent.map((s) => ({ w: s.examples / total, tensors: new Map(decodeSafetensors(s.payload).tensors.map((t) => [t.name, t.data])) }));
      let checked = 0;
      for (const name of decoded[0]!.tensors.keys()) {
        const parsed = parsePeftTensorName(name)!;
        const actual = state.adapter!.factors.get(parsed.path)![parsed.factor]!;
        let worst = 0;
        for (let i = 0; i < actual.length; i++) {
          let mean = 0; // float64
          for (const d of decoded) mean += d.w * d.tensors.get(name)![i]!;
          worst = Math.max(worst, Math.abs(actual[i]! - mean));
        }
        // Factors are O(1); a float32 result of a 3-term weighted sum is within a few ulps (~1e-7).
        expect(worst, name).toBeLessThan(1e-6);
        checked++;
      }
      expect(checked).toBe(strategy === 'fedavg' ? 4 : 2);
    } finally {
      await coordinator.stop();
    }
  });
});

describe('flora: the committed global state is the exact stack of what the agents sent', () => {
  it('s B A of the committed adapter equals a float64 sum over agents of p_k s_k B_k A_k (shards of 30, 48 and 66)', async () => {
    const files = await writeDigitShards(3, [30, 48, 66]);
    const { coordinator, api } = await startCoordinator();
    try {
      const jobId = await api.createJob(mlpJob('flora', sha256, { rounds: 1 }));
      const sent: Array<{ payload: Uint8Array; examples: number; alpha: number; rank: number }> = [];
      const clients = await Promise.all(
        files.map(async (file) => {
          const model = await loadBaseModel(modelDir);
          const inner = inProcessTrainer(model, await loadLocalData(file, model));
          const trainer: RoundTrainer = {
            train: async (offer, hooks) => {
              const trained = await inner.train(offer, hooks);
              sent.push({ payload: trained.payload, examples: trained.examples, alpha: offer.plan.alpha, rank: offer.plan.rank });
              return trained;
            },
            close: () => inner.close(),
          };
          return makeAgent(api.url, jobId, await api.token(jobId), modelDir, file, { trainer });
        }),
      );
      await Promise.all(clients.map((c) => startRun(c.agent)));
      const state = decodeGlobalState(coordinator.store.latestState(jobId)!);
      const total = sent.reduce((t, s) => t + s.examples, 0);
      for (const m of state.adapter!.layout.modules) {
        expect(m.rank).toBe(3 * 2); // the stack of three rank-2 updates
        const { A, B } = state.adapter!.factors.get(m.path)!;
        const s = m.alpha / m.rank;
        const names = { A: `base_model.model.${m.path}.lora_A.weight`, B: `base_model.model.${m.path}.lora_B.weight` };
        const parts = sent.map((u) => {
          const t = new Map(decodeSafetensors(u.payload).tensors.map((x) => [x.name, x.data]));
          return { A: t.get(names.A)!, B: t.get(names.B)!, coef: (u.examples / total) * (u.alpha / u.rank), r: u.rank };
        });
        let worst = 0;
        let scale = 0;
        for (let i = 0; i < m.outFeatures; i++) {
          for (let j = 0; j < m.inFeatures; j++) {
            let got = 0;
            for (let k = 0; k < m.rank; k++) got += B![i * m.rank + k]! * A![k * m.inFeatures + j]!;
            got *= s;
            let want = 0; // float64 reference: sum_k p_k s_k (B_k A_k)[i, j]
            for (const p of parts) for (let k = 0; k < p.r; k++) want += p.coef * p.B[i * p.r + k]! * p.A[k * m.inFeatures + j]!;
            worst = Math.max(worst, Math.abs(got - want));
            scale = Math.max(scale, Math.abs(want));
          }
        }
        // Exact up to the float32 rounding of the stacked A rows (c_k A_k): relative 1e-6 of the largest entry.
        expect(scale).toBeGreaterThan(0);
        expect(worst / scale, m.path).toBeLessThan(1e-6);
      }
    } finally {
      await coordinator.stop();
    }
  });
});
