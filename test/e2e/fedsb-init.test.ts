/**
 * Fed-SB's gradient initialisation through the federated runtime: a real coordinator and three
 * real agents (tiny mlp, digits shards, tfjs wasm). The init phase's committed state must be
 * fedsb's gradient init of the float64 sum of what the agents sent, each agent's gradient must be
 * the base-weight gradient of its first `samples` examples, and the job must then complete. With
 * client-side DP the noised release is booked on each participant's ledger account; unnoised, the
 * job spec is refused.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { readMlpCheckpoint } from '../../client/models/mlp-checkpoint.js';
import { inProcessTrainer, type RoundTrainer } from '../../client/agent/round-handler.js';
import { loadBaseModel } from '../../client/agent/base-model.js';
import { loadLocalData } from '../../client/agent/local-data.js';
import { baseWeightGradients } from '../../client/train/base-gradient.js';
import { decodeOfferedAdapter } from '../../coordinator/state-codec.js';
import { strategySpecOf } from '../../coordinator/jobs.js';
import { fedsbInitFromGradient, fedsbRandomInit } from '../../aggregation/fedsb.js';
import { JobSpecSchema } from '../../shared/protocol/job-spec.js';
import type { Offer } from '../../shared/protocol/events.js';
import { decodeSafetensors } from '../../shared/safetensors/index.js';
import { accountKey, parseLedger, spent } from '../../privacy/ledger.js';
import { epsilonOfSampledGaussian } from '../../privacy/accountant.js';
import { makeAgent, mlpJob, startCoordinator, startRun, wasmBackend, writeBaseModel, writeDigitShards } from './harness.js';

let modelDir: string;
let sha256: string;

beforeAll(async () => {
  await wasmBackend();
  modelDir = await writeBaseModel();
  sha256 = (await readMlpCheckpoint(modelDir)).sha256;
});

interface Seen {
  file: string;
  initPayload?: Uint8Array;
  initExamples?: number;
  /** The state offered in round 0: the committed initial global state. */
  round0State?: Uint8Array;
  rounds: number;
}

/** Agents whose own trainer records the init payload and the round-0 offer. */
async function recordingAgents(url: string, jobId: string, token: () => Promise<string>, files: string[]) {
  const seen: Seen[] = files.map((file) => ({ file, rounds: 0 }));
  const clients = await Promise.all(
    seen.map(async (s) => {
      const model = await loadBaseModel(modelDir);
      const inner = inProcessTrainer(model, await loadLocalData(s.file, model));
      const trainer: RoundTrainer = {
        train: async (offer: Offer, hooks) => {
          const trained = await inner.train(offer, hooks);
          if (offer.plan.extra.phase === 'fedsb-init') {
            s.initPayload = trained.payload;
            s.initExamples = trained.examples;
          } else {
            if (offer.round === 0) s.round0State = offer.state;
            s.rounds++;
          }
          return trained;
        },
        close: () => inner.close(),
      };
      return makeAgent(url, jobId, await token(), modelDir, s.file, { trainer });
    }),
  );
  return { seen, clients };
}

describe('fedsb gradient init in the federated runtime', () => {
  it('commits fedsb\'s gradient init of the float64 sum of the agents\' gradients, then completes the job', async () => {
    const files = await writeDigitShards(3, [30, 48, 66]);
    const { coordinator, api } = await startCoordinator();
    try {
      const input = mlpJob('fedsb', sha256, { fedsb: { init: 'gradient', samples: 50 } });
      const jobId = await api.createJob(input);
      const { seen, clients } = await recordingAgents(api.url, jobId, () => api.token(jobId), files);
      const summaries = await Promise.all(clients.map((c) => startRun(c.agent)));

      const job = await api.job(jobId);
      expect(job.status).toBe('completed');
      expect(job.round).toBe(2);
      for (const s of summaries) {
        expect(s.status).toBe('completed');
        expect(s.roundsTrained).toBe(3); // the init phase + 2 rounds
        expect(s.updatesAccepted).toBe(3);
        expect(s.updatesRefused).toEqual([]);
      }
      // each agent summed over its first min(50, n) examples
      expect(seen.map((s) => s.initExamples)).toEqual([30, 48, 50]);

      // Reference: float64 sum of the gradients the agents sent, then fedsb's gradient init.
      const spec = JobSpecSchema.parse(input);
      const layout = (await loadBaseModel(modelDir)).adaptable;
      const sspec = strategySpecOf(spec, layout);
      const sums = new Map(sspec.modules.map((m) => [m.path, new Float64Array(m.outFeatures * m.inFeatures)]));
      for (const s of seen) {
        const tensors = new Map(decodeSafetensors(s.initPayload!).tensors.map((t) => [t.name, t]));
        expect(tensors.size).toBe(sspec.modules.length);
        for (const m of sspec.modules) {
          const t = tensors.get(`base_model.model.${m.path}.fedsb_G.weight`)!;
          expect(t.shape).toEqual([m.outFeatures, m.inFeatures]);
          const into = sums.get(m.path)!;
          for (let i = 0; i < t.data.length; i++) into[i] = into[i]! + t.data[i]!;
        }
      }
      const want = fedsbInitFromGradient(sspec, String(spec.seed), new Map([...sums].map(([p, x]) => [p, Float32Array.from(x)])), spec.training.lr).state.adapter!;
      const random = fedsbRandomInit(sspec, String(spec.seed)).adapter!;
      // Every agent started round 0 from the same committed state.
      const got = decodeOfferedAdapter(seen[0]!.round0State!)!;
      for (const s of seen) expect(Buffer.from(s.round0State!).equals(Buffer.from(seen[0]!.round0State!))).toBe(true);
      for (const m of sspec.modules) {
        const g = got.factors.get(m.path)!;
        const w = want.factors.get(m.path)!;
        // Same sign matrix, same seeded SVD: equal up to float32 rounding (the entries are O(1) for
        // A and B and O(eta sqrt(mn)) for R0; 1e-6 absolute is a few ulps of either).
        for (const f of ['A', 'B', 'R'] as const) {
          expect(g[f]!.length, `${m.path} ${f}`).toBe(w[f]!.length);
          let worst = 0;
          for (let i = 0; i < w[f]!.length; i++) worst = Math.max(worst, Math.abs(g[f]![i]! - w[f]![i]!));
          expect(worst, `${m.path} ${f}`).toBeLessThan(1e-6);
        }
        // R0 = diag(S) > 0, not the random fallback's R = 0
        expect(g.R![0]).toBeGreaterThan(0);
        expect(Math.max(...g.A!.map((v, i) => Math.abs(v - random.factors.get(m.path)!.A![i]!)))).toBeGreaterThan(1e-3);
      }

      // The gradient an agent sent is its model's base-weight gradient over its first 30 examples.
      const model = await loadBaseModel(modelDir);
      const data = await loadLocalData(files[0]!, model);
      const lora = await model.build({ variant: 'fedsb', rank: 2, alpha: 2, modules: layout.map((m) => m.path), seed: 0 });
      try {
        const ref = await baseWeightGradients(lora, data.source, Array.from({ length: 30 }, (_, i) => i));
        const tensors = new Map(decodeSafetensors(seen[0]!.initPayload!).tensors.map((t) => [t.name, t.data]));
        for (const [path, g] of ref.gradients) {
          const sent = tensors.get(`base_model.model.${path}.fedsb_G.weight`)!;
          // the same computation on the same examples: identical bits
          expect(Buffer.from(sent.buffer, sent.byteOffset, sent.byteLength).equals(Buffer.from(g.buffer, g.byteOffset, g.byteLength)), path).toBe(true);
        }
      } finally {
        lora.dispose();
      }
    } finally {
      await coordinator.stop();
    }
  });

  it('books the noised release on each participant\'s client account under client-side DP', async () => {
    const files = await writeDigitShards(3, 32);
    const { coordinator, api } = await startCoordinator();
    try {
      const jobId = await api.createJob(
        mlpJob('fedsb', sha256, {
          rounds: 1,
          training: { epochs: 1, batchSize: 16, lr: 0.02 },
          privacy: { client: { noiseMultiplier: 1.5, clip: 1 }, budget: { epsilon: 50, delta: 1e-5 } },
          fedsb: { init: 'gradient', samples: 20, noiseMultiplier: 2, clip: 1 },
        }),
      );
      const { clients } = await recordingAgents(api.url, jobId, () => api.token(jobId), files);
      const summaries = await Promise.all(clients.map((c) => startRun(c.agent)));
      expect((await api.job(jobId)).status).toBe('completed');
      const ledger = parseLedger(coordinator.store.ledger(jobId)!);
      // one plain Gaussian release (q = 1, sigma 2) per client, from the accountant directly
      const release = epsilonOfSampledGaussian(1, 2, 1, 1e-5).epsilon;
      for (const c of clients) {
        const id = `${jobId}/${c.agent.id!}`;
        expect(ledger.accounts[accountKey('client', id)]!.history).toEqual([{ q: 1, sigma: 2, steps: 1 }]);
        expect(spent(ledger, 'client', id).epsilon).toBeCloseTo(release, 9);
      }
      // the agents compose the release into the epsilon they report: more than DP-SGD alone
      for (const s of summaries) {
        const e = s.clientEpsilon!;
        expect(e.initReleaseNoiseMultiplier).toBe(2);
        expect(e.epsilon).toBeGreaterThan(epsilonOfSampledGaussian(e.samplingRate, e.noiseMultiplier, e.steps, e.delta).epsilon);
      }
    } finally {
      await coordinator.stop();
    }
  });

  it('refuses a gradient init that is not noised while DP is on, naming the field', async () => {
    const { coordinator, api } = await startCoordinator();
    try {
      const r = await api.call('POST', '/api/jobs', mlpJob('fedsb', sha256, { privacy: { client: { noiseMultiplier: 1 } }, fedsb: { init: 'gradient' } }));
      expect(r.status).toBe(400);
      const error = (r.json as { error: { code: string; message: string; field?: string } }).error;
      expect(error.code).toBe('FL_ERR_INVALID_CONFIG');
      expect(error.message).toMatch(/must be noised/);
      expect(error.message).toMatch(/fedsb\.noiseMultiplier/);
      // noised, the same spec is accepted; fedsb options on another strategy are refused
      expect((await api.call('POST', '/api/jobs', mlpJob('fedsb', sha256, { privacy: { client: { noiseMultiplier: 1 } }, fedsb: { init: 'gradient', noiseMultiplier: 1 } }))).status).toBe(201);
      const other = await api.call('POST', '/api/jobs', mlpJob('ffa', sha256, { fedsb: { init: 'gradient' } }));
      expect(other.status).toBe(400);
      expect(JSON.stringify(other.json)).toMatch(/fedsb options need strategy fedsb/);
    } finally {
      await coordinator.stop();
    }
  });
});
