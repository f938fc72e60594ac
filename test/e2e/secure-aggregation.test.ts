/**
 * Secure aggregation through the real runtime: a coordinator, real agents on loopback sockets,
 * the four `secagg` steps per round. The coordinator only ever holds masked vectors and their sum.
 *
 * Exactness: the same job run plainly and securely (same seed, same shards of equal size, so
 * FedAvg's example weights are uniform like the secure sum's) must give the same global adapter
 * up to the quantisation bound the round reports (per coordinate of the average) plus float32
 * rounding of the two paths (1e-6 relative). A broken mask would be off by ~2^32 / T = 1024
 * quantisation steps, i.e. by values of order c = 8.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { quietProgress } from '../../client/agent/progress.js';
import { decodeGlobalState, decodeOfferedAdapter } from '../../coordinator/state-codec.js';
import type { Coordinator } from '../../coordinator/coordinator.js';
import { isFedloraError } from '../../shared/errors.js';
import type { JobSpecInput } from '../../shared/protocol/job-spec.js';
import type { Adapter } from '../../shared/adapter.js';
import { inProcessTrainer, type RoundTrainer } from '../../client/agent/round-handler.js';
import { loadBaseModel } from '../../client/agent/base-model.js';
import { loadLocalData } from '../../client/agent/local-data.js';
import { strategySpecOf } from '../../coordinator/jobs.js';
import { fedsbInitFromGradient } from '../../aggregation/fedsb.js';
import { JobSpecSchema } from '../../shared/protocol/job-spec.js';
import { decodeSafetensors } from '../../shared/safetensors/index.js';
import { HandClient } from './hand-client.js';
import { makeAgent, mlpFixture, mlpJob, startCoordinator, type Api, type TestClient } from './harness.js';

let modelDir: string;
let sha256: string;
let shards: string[];

beforeAll(async () => {
  ({ modelDir, sha256, shards } = await mlpFixture(7, 24));
});

async function runJob(api: Api, spec: JobSpecInput, clients: number, progressOf: (i: number, agents: TestClient[]) => ReturnType<typeof quietProgress> = () => quietProgress()) {
  const jobId = await api.createJob(spec);
  const agents: TestClient[] = [];
  for (let i = 0; i < clients; i++) agents.push(await makeAgent(api.url, jobId, await api.token(jobId), modelDir, shards[i]!, { progress: progressOf(i, agents) }));
  const results = await Promise.allSettled(agents.map((a) => a.agent.run()));
  return { jobId, agents, results };
}

function adapterOf(coordinator: Coordinator, jobId: string): Adapter {
  const stored = coordinator.store.latestState(jobId);
  expect(stored).not.toBeNull();
  return decodeGlobalState(stored!).adapter!;
}

describe('secure aggregation in the runtime', () => {
  it('gives the plain FedAvg global adapter within the reported quantisation bound', async () => {
    const { coordinator, api } = await startCoordinator();
    try {
      const base = mlpJob('fedavg', sha256, { rounds: 1, clientsPerRound: 4, minClients: 4, deterministicAggregation: true });
      const plain = await runJob(api, base, 4);
      const secure = await runJob(api, { ...base, secureAggregation: { enabled: true } }, 4);
      for (const r of [...plain.results, ...secure.results]) expect(r.status).toBe('fulfilled');

      const view = await api.job(secure.jobId);
      expect(view.status).toBe('completed');
      const m = view.roundsDetail[0]!.metrics;
      expect(m.secure_aggregation).toBe(1);
      expect(m.secagg_dropped).toBe(0);
      expect(m.secagg_bad_shares).toBe(0);
      expect(view.roundsDetail[0]!.participants).toHaveLength(4);
      const bound = m.secagg_error_bound!;
      expect(bound).toBeGreaterThan(0);
      expect(view.roundsDetail[0]!.secureAggregation).toEqual({ survivors: 4, droppedClients: 0, droppedAtUnmasking: 0, badShares: 0, errorBound: bound });
      expect((await api.job(plain.jobId)).roundsDetail[0]!.secureAggregation).toBeNull();

      const a = adapterOf(coordinator, plain.jobId);
      const b = adapterOf(coordinator, secure.jobId);
      let worst = 0;
      let moved = 0;
      for (const [path, factors] of a.factors) {
        for (const f of ['A', 'B'] as const) {
          const x = factors[f]!;
          const y = b.factors.get(path)![f]!;
          expect(y.length).toBe(x.length);
          for (let i = 0; i < x.length; i++) {
            worst = Math.max(worst, Math.abs(x[i]! - y[i]!) - 1e-6 * Math.abs(x[i]!));
            moved = Math.max(moved, Math.abs(x[i]!));
          }
        }
      }
      expect(moved).toBeGreaterThan(1e-3);
      expect(worst).toBeLessThanOrEqual(bound);
    } finally {
      await coordinator.stop();
    }
  }, 120_000);

  it('recovers the sum when one client drops before masking and another after, and reports both', async () => {
    const { coordinator, api } = await startCoordinator();
    try {
      // n = 7: degree 6, threshold 4, so each client keeps 4 answering neighbours with 2 gone
      const spec = mlpJob('ffa', sha256, { rounds: 2, clientsPerRound: 7, minClients: 4, secureAggregation: { enabled: true, stepTimeoutSeconds: 20 } });
      const { jobId, agents, results } = await runJob(api, spec, 7, (i, agents) => {
        if (i === 2) return { ...quietProgress(), roundStart: () => agents[2]!.agent.stop('dropping out while training') };
        if (i === 5) {
          return {
            ...quietProgress((line) => {
              // its masked vector is in the sum; it leaves before revealing any share
              if (/masked update accepted/.test(line)) agents[5]!.agent.stop('dropping out before unmasking');
            }),
          };
        }
        return quietProgress();
      });
      for (const [i, r] of results.entries()) {
        if (i === 2 || i === 5) {
          expect(r.status).toBe('rejected');
          expect(isFedloraError((r as PromiseRejectedResult).reason, 'FL_ERR_CONNECTION')).toBe(true);
        } else expect(r.status).toBe('fulfilled');
      }

      const view = await api.job(jobId);
      expect(view.status).toBe('completed');
      const first = view.roundsDetail[0]!;
      expect(first.metrics.secure_aggregation).toBe(1);
      expect(first.secureAggregation).toMatchObject({ survivors: 6, droppedClients: 1, droppedAtUnmasking: 1, badShares: 0 });
      expect([...first.participants].sort()).toEqual(agents.filter((_, i) => i !== 2).map((a) => a.agent.id!).sort());
      // the second round no longer offers the two that left
      expect(view.roundsDetail[1]!.secureAggregation).toMatchObject({ survivors: 5, droppedClients: 0, droppedAtUnmasking: 0 });
      for (const f of adapterOf(coordinator, jobId).factors.values()) for (const x of f.B!) expect(Number.isFinite(x)).toBe(true);
    } finally {
      await coordinator.stop();
    }
  }, 120_000);

  it('fails the round cleanly, with the reason, when more clients drop than the threshold allows', async () => {
    const { coordinator, api } = await startCoordinator();
    try {
      const spec = mlpJob('fedavg', sha256, { rounds: 1, clientsPerRound: 7, minClients: 3, belowMinimum: { policy: 'fail', retries: 0 }, secureAggregation: { enabled: true, stepTimeoutSeconds: 20 } });
      const leaving = new Set([0, 1, 3, 4]);
      const { jobId, results } = await runJob(api, spec, 7, (i, agents) => (leaving.has(i) ? { ...quietProgress(), roundStart: () => agents[i]!.agent.stop('dropping out') } : quietProgress()));
      for (const [i, r] of results.entries()) if (!leaving.has(i)) expect(r.status === 'fulfilled' && r.value.status).toBe('failed');
      const view = await api.job(jobId);
      expect(view.status).toBe('failed');
      // 3 of 7 left: each keeps 2 live neighbours of 6, fewer than the threshold 4
      expect(view.reason).toMatch(/live neighbours, fewer than the threshold 4/);
      expect(view.roundsDetail).toHaveLength(0);
      expect(coordinator.store.latestState(jobId)!.round).toBe(0);
    } finally {
      await coordinator.stop();
    }
  }, 120_000);

  it('distributed DP: the sum carries N(0, (z C)^2), and the ledger books the effective multiplier', async () => {
    const { coordinator, api } = await startCoordinator();
    try {
      // Same clipped updates with and without the noise shares: their averages differ by the
      // noise alone (plus quantisation), N(0, (z C / n)^2) per coordinate.
      const n = 4;
      const C = 0.5;
      const z = 1;
      const sa = { enabled: true, clipNorm: C };
      const base = mlpJob('fedavg', sha256, { rounds: 1, clientsPerRound: n, minClients: n, deterministicAggregation: true });
      const quiet = await runJob(api, { ...base, secureAggregation: sa }, n);
      const noisy = await runJob(api, { ...base, secureAggregation: { ...sa, dp: { noiseMultiplier: z } }, privacy: { budget: { epsilon: 100, delta: 1e-5 } } }, n);
      for (const r of [...quiet.results, ...noisy.results]) expect(r.status).toBe('fulfilled');
      const a = adapterOf(coordinator, quiet.jobId);
      const b = adapterOf(coordinator, noisy.jobId);
      const diffs: number[] = [];
      for (const [path, factors] of a.factors) for (const f of ['A', 'B'] as const) factors[f]!.forEach((x, i) => diffs.push(b.factors.get(path)![f]![i]! - x));
      const m = diffs.length;
      const mean = diffs.reduce((s, d) => s + d, 0) / m;
      const sd = Math.sqrt(diffs.reduce((s, d) => s + (d - mean) ** 2, 0) / (m - 1));
      const expected = (z * C) / n;
      // the sample sd of m normal values has relative standard error 1/sqrt(2(m-1)); allow 5 of them
      expect(Math.abs(sd / expected - 1)).toBeLessThan(5 / Math.sqrt(2 * (m - 1)));
      expect(Math.abs(mean)).toBeLessThan((5 * expected) / Math.sqrt(m));

      const view = await api.job(noisy.jobId);
      // Booked: only the other honest clients' shares protect a client (its own leaves with it under
      // add/remove adjacency): z sqrt((n - 1) / n) with n = h = 4 survivors (docs/secure-aggregation.md).
      const zEff = z * Math.sqrt((n - 1) / n);
      expect(view.roundsDetail[0]!.secureAggregation!.noiseMultiplier).toBeCloseTo(zEff, 12);
      // q = 4 offered of 4 connected, sigma = z_eff, one step: the RDP of the plain Gaussian
      // mechanism, alpha/(2 sigma^2), converted at delta (Balle et al. 2020's conversion, as privacy/rdp.ts)
      const alphas = Array.from({ length: 2000 }, (_, i) => 1.01 + i * 0.05);
      const eps = Math.min(...alphas.map((al) => al / (2 * zEff * zEff) + Math.log((al - 1) / al) - (Math.log(1e-5) + Math.log(al)) / (al - 1)));
      expect(view.privacy.epsilon).not.toBeNull();
      expect(Math.abs(view.privacy.epsilon! - eps) / eps).toBeLessThan(0.01);
    } finally {
      await coordinator.stop();
    }
  }, 120_000);

  it("securely sums Fed-SB's init gradients: the initial state is fedsb's gradient init of the plain sum", async () => {
    const { coordinator, api } = await startCoordinator();
    try {
      // c = 64 and T = 2^30 (3 clients: 3 T < 2^32): quantisation steps of 1.2e-7, so the sum's
      // signs (all the init uses) match the plain sum's unless an entry lies within 3 steps of 0
      const input = mlpJob('fedsb', sha256, { rounds: 1, fedsb: { init: 'gradient', samples: 20 }, secureAggregation: { enabled: true, clipRange: 64, quantRange: 2 ** 30 } });
      const jobId = await api.createJob(input);
      const payloads: Uint8Array[] = [];
      let round0: Uint8Array | undefined;
      const agents: TestClient[] = [];
      for (let i = 0; i < 3; i++) {
        const model = await loadBaseModel(modelDir);
        const inner = inProcessTrainer(model, await loadLocalData(shards[i]!, model));
        const trainer: RoundTrainer = {
          train: async (offer, hooks) => {
            const trained = await inner.train(offer, hooks);
            if (offer.plan.extra.phase === 'fedsb-init') payloads.push(trained.payload);
            else round0 ??= offer.state;
            return trained;
          },
          close: () => inner.close(),
        };
        agents.push(await makeAgent(api.url, jobId, await api.token(jobId), modelDir, shards[i]!, { trainer }));
      }
      for (const s of await Promise.all(agents.map((a) => a.agent.run()))) expect(s.status).toBe('completed');
      expect(payloads).toHaveLength(3);

      const spec = JobSpecSchema.parse(input);
      const sspec = strategySpecOf(spec, (await loadBaseModel(modelDir)).adaptable);
      const step = (2 * 64) / 2 ** 30;
      const sums = new Map(sspec.modules.map((m) => [m.path, new Float64Array(m.outFeatures * m.inFeatures)]));
      for (const p of payloads) {
        const tensors = new Map(decodeSafetensors(p).tensors.map((t) => [t.name, t.data]));
        for (const m of sspec.modules) {
          const g = tensors.get(`base_model.model.${m.path}.fedsb_G.weight`)!;
          const into = sums.get(m.path)!;
          g.forEach((x, i) => {
            expect(Math.abs(x)).toBeLessThan(64);
            into[i] = into[i]! + x;
          });
        }
      }
      for (const sum of sums.values()) for (const x of sum) expect(x === 0 || Math.abs(x) > 3 * step).toBe(true);
      const want = fedsbInitFromGradient(sspec, String(spec.seed), new Map([...sums].map(([p, x]) => [p, Float32Array.from(x)])), spec.training.lr).state.adapter!;
      const got = decodeOfferedAdapter(round0!)!;
      for (const m of sspec.modules) {
        for (const f of ['A', 'B', 'R'] as const) {
          const w = want.factors.get(m.path)![f]!;
          const g = got.factors.get(m.path)![f]!;
          let worst = 0;
          for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(g[i]! - w[i]!));
          expect(worst, `${m.path} ${f}`).toBeLessThan(1e-6);
        }
      }
    } finally {
      await coordinator.stop();
    }
  }, 120_000);

  it('refuses a malformed secagg message with a reason, and the round goes on without that client', async () => {
    const { coordinator, api } = await startCoordinator();
    try {
      const spec = mlpJob('fedavg', sha256, { rounds: 1, clientsPerRound: 4, minClients: 3, secureAggregation: { enabled: true, stepTimeoutSeconds: 3 } });
      const jobId = await api.createJob(spec);
      const agents: TestClient[] = [];
      for (let i = 0; i < 3; i++) agents.push(await makeAgent(api.url, jobId, await api.token(jobId), modelDir, shards[i]!));
      const hand = new HandClient(api.url);
      const refused = new Promise<unknown>((resolve) => {
        hand.socket.on('offer', (offer) => {
          expect(offer.secureAggregation?.clients).toContain(hand.clientId);
          hand.socket.emit('secagg', { jobId, round: offer.round, attempt: offer.attempt, step: 'advertise', message: { from: hand.clientId, cPublicKey: 'not base64!', sPublicKey: '' } }, resolve);
        });
      });
      const modules = [
        { path: 'layers.0', outFeatures: 12, inFeatures: 64 },
        { path: 'head', outFeatures: 10, inFeatures: 12 },
      ];
      await hand.join(jobId, await api.token(jobId), { sha256, modules });
      const runs = agents.map((a) => a.agent.run());
      const ack = (await refused) as { ok: boolean; error?: { code: string; message: string } };
      expect(ack.ok).toBe(false);
      expect(ack.error!.code).toBe('FL_ERR_SECAGG_PROTOCOL');
      expect(ack.error!.message).toMatch(/cPublicKey/);
      for (const s of await Promise.all(runs)) expect(s.status).toBe('completed');
      const view = await api.job(jobId);
      expect(view.status).toBe('completed');
      expect(view.roundsDetail[0]!.participants).toHaveLength(3);
      expect(view.roundsDetail[0]!.participants).not.toContain(hand.clientId);
      expect(view.roundsDetail[0]!.metrics.secagg_dropped).toBe(1);
      hand.socket.close();
    } finally {
      await coordinator.stop();
    }
  }, 120_000);
});
