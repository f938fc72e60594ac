import { describe, expect, it } from 'vitest';
import { JobViewSchema } from '../../../shared/protocol/http.js';
import { epsilonOfSampledGaussian } from '../../../privacy/accountant.js';
import { decodeGlobalState } from '../../../coordinator/state-codec.js';
import { SHA } from '../helpers.js';
import { useEngineHarness } from './harness.js';
import { TestClient } from '../protocol-client.js';

const modules = [{ path: 'model.layers.0.self_attn.q_proj', outFeatures: 6, inFeatures: 5 }];

const t = useEngineHarness({ modules, job: { strategy: 'fedavg', rank: 2, seed: 4, model: { sha256: SHA, targetModules: ['q_proj'] } } });

async function setup(privacy: Record<string, unknown>, rounds: number): Promise<{ jobId: string; cs: TestClient[] }> {
  const jobId = await t.createJob({ rounds, clientsPerRound: 2, minClients: 2, overSelection: 0, privacy });
  return { jobId, cs: await t.enrol(jobId, 3) };
}

/** Plays one round: the 2 clients offered send 10.0 everywhere (far from the global state). */
async function playRound(cs: TestClient[]): Promise<void> {
  const offers = await TestClient.offersFrom(cs, 2);
  const acks = await Promise.all(offers.map(([c, o]) => c.send(o, TestClient.payload(o, () => 10, 5))));
  expect(acks.every((a) => a.ok)).toBe(true);
}

describe('round engine with user-level DP-FedAvg (aggregation/dp-fedavg.ts) and the ledger', () => {
  it('clips and noises the aggregate; a seeded (reproducible) selection books q = 1 and the view says so', async () => {
    const h = await t.start({ engine: { seededSelection: true } });
    const { jobId, cs } = await setup({ user: { noiseMultiplier: 1.2, clip: 0.05 }, budget: { epsilon: 100, delta: 1e-5 } }, 2);
    const initial = decodeGlobalState(h.coordinator.store.latestState(jobId)!);
    for (let round = 0; round < 2; round++) {
      await playRound(cs);
      const result = await cs[0]!.next('round_result');
      // a seeded draw is no secret subsample: q = 1, one step per round (issue 11)
      const reference = epsilonOfSampledGaussian(1, 1.2, round + 1, 1e-5).epsilon;
      expect(result.epsilonSpent).toBeCloseTo(reference, 9);
      expect(result.metrics.dp_clip_norm).toBe(0.05);
      expect(result.metrics.dp_clipped_updates).toBe(2);
    }
    // Clipping held: each client moved every value by ~10 (a delta of norm ~ 10 sqrt(22) = 47), but
    // the global state moved by at most C = 0.05 plus noise of std z C / k = 0.03 per coordinate
    // over 22 coordinates per round (norm ~ 0.14); 2 rounds stay far below 1.
    const final = decodeGlobalState(h.coordinator.store.latestState(jobId)!);
    let sq = 0;
    for (const m of modules) for (const f of ['A', 'B'] as const) {
      const a = initial.adapter!.factors.get(m.path)![f]!;
      const b = final.adapter!.factors.get(m.path)![f]!;
      for (let i = 0; i < a.length; i++) sq += (b[i]! - a[i]!) ** 2;
    }
    expect(Math.sqrt(sq)).toBeGreaterThan(0);
    expect(Math.sqrt(sq)).toBeLessThan(1);
    const view = JobViewSchema.parse((await h.api('GET', `/api/jobs/${jobId}`)).json);
    expect(view.privacy.epsilon).toBeCloseTo(epsilonOfSampledGaussian(1, 1.2, 2, 1e-5).epsilon, 9);
    expect(view.privacy).toMatchObject({ delta: 1e-5, budgetEpsilon: 100, rounds: 2, booked: [{ q: 1, noiseMultiplier: 1.2, rounds: 2 }] });
    expect(view.privacy.sampling).toMatch(/^q = 1: a seeded \(reproducible\) selection/);
  });

  it('stops the job before a round that would exceed the budget', async () => {
    const h = await t.start({ engine: { seededSelection: true } });
    const e1 = epsilonOfSampledGaussian(1, 1.5, 1, 1e-5).epsilon;
    const e2 = epsilonOfSampledGaussian(1, 1.5, 2, 1e-5).epsilon;
    const { jobId, cs } = await setup({ user: { noiseMultiplier: 1.5 }, budget: { epsilon: (e1 + e2) / 2 } }, 3);
    await playRound(cs);
    const end = await cs[0]!.next('job_end');
    expect(end).toMatchObject({ status: 'failed', rounds: 1 });
    expect(end.reason).toMatch(/privacy budget exhausted before round 1/);
    const view = JobViewSchema.parse((await h.api('GET', `/api/jobs/${jobId}`)).json);
    expect(view.privacy.epsilon).toBeCloseTo(e1, 9);
    expect(view.roundsDetail).toHaveLength(1);
  });
});
