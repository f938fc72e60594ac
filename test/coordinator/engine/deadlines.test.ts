import { describe, expect, it } from 'vitest';
import { JobViewSchema } from '../../../shared/protocol/http.js';
import { SHA } from '../helpers.js';
import { useEngineHarness } from './harness.js';
import { TestClient } from '../protocol-client.js';

const modules = [{ path: 'model.layers.0.mlp.q_proj', outFeatures: 4, inFeatures: 4 }];

const t = useEngineHarness({ modules, job: { model: { sha256: SHA, targetModules: ['q_proj'] }, rank: 2, seed: 11 } });

function offeredCount(jobId: string): number {
  return t.h.coordinator.engine.runner(jobId)!.currentRound!.selected.length;
}

async function setup(body: Record<string, unknown>, n: number): Promise<{ jobId: string; cs: TestClient[] }> {
  const jobId = await t.createJob(body);
  return { jobId, cs: await t.enrol(jobId, n) };
}

describe('round engine: deadlines, the minimum, retries and failure', () => {
  it('retries a round below its minimum at the deadline, then fails the job with the reason', async () => {
    const h = await t.start();
    const { jobId, cs } = await setup({ strategy: 'ffa', rounds: 2, clientsPerRound: 2, minClients: 2, overSelection: 0, roundDeadlineSeconds: 1, belowMinimum: { policy: 'retry', retries: 1 } }, 2);
    const [a, b] = cs as [TestClient, TestClient];
    // Attempt 0: only a answers.
    const offer0 = await a.nextOffer();
    await b.nextOffer();
    expect(offer0.attempt).toBe(0);
    expect(await a.send(offer0, TestClient.payload(offer0, () => 1))).toMatchObject({ ok: true });
    expect(await b.next('round_closed')).toEqual({ jobId, round: 0, attempt: 0, reason: 'retry' });
    // Attempt 1 of the same round: nobody answers.
    const offer1 = await a.nextOffer();
    expect(offer1).toMatchObject({ round: 0, attempt: 1 });
    // An envelope sealed for attempt 0 does not count for attempt 1.
    const stale = await a.send({ jobId, round: 0, attempt: 1 }, TestClient.payload(offer1, () => 1), { attempt: 0 });
    expect(stale).toMatchObject({ ok: false, error: { code: 'FL_ERR_ENVELOPE_BINDING' } });
    const end = await a.next('job_end');
    expect(end).toMatchObject({ jobId, status: 'failed', rounds: 0 });
    expect(end.reason).toMatch(/round 0 attempt 1 got 0 valid updates, below the minimum of 2 after 2 attempts/);
    const view = JobViewSchema.parse((await h.api('GET', `/api/jobs/${jobId}`)).json);
    expect(view.status).toBe('failed');
    expect(view.reason).toBe(end.reason);
    // Both attempts are in the audit trail; nothing was committed.
    expect(h.coordinator.store.updates(jobId, 0).map((u) => [u.attempt, u.status])).toEqual([
      [0, 'accepted'],
      [1, 'refused'],
    ]);
    expect(h.coordinator.store.rounds(jobId)).toEqual([]);
  });

  it('fails at once under policy fail', async () => {
    const h = await t.start();
    const { jobId, cs } = await setup({ strategy: 'fedsb', rounds: 1, clientsPerRound: 1, minClients: 1, overSelection: 0, roundDeadlineSeconds: 0.5, belowMinimum: { policy: 'fail' } }, 1);
    await cs[0]!.nextOffer();
    const end = await cs[0]!.next('job_end');
    expect(end.status).toBe('failed');
    expect(end.reason).toMatch(/belowMinimum\.policy fail/);
    expect(h.coordinator.store.getJob(jobId)!.status).toBe('failed');
  });

  it('commits at the deadline with at least the minimum, and drops the straggler without banning it', async () => {
    const h = await t.start();
    const { jobId, cs } = await setup({ strategy: 'ffa', rounds: 2, clientsPerRound: 3, minClients: 2, overSelection: 0, roundDeadlineSeconds: 1 }, 3);
    const offers = await Promise.all(cs.map((c) => c.nextOffer()));
    await Promise.all([0, 1].map((k) => cs[k]!.send(offers[k]!, TestClient.payload(offers[k]!, () => k, 5))));
    const result = await cs[0]!.next('round_result');
    expect(result).toMatchObject({ round: 0, participants: 2 });
    expect(await cs[2]!.next('round_closed')).toMatchObject({ round: 0, reason: 'deadline' });
    // The straggler's late update is refused with a code; it is offered the next round.
    const late = await cs[2]!.send(offers[2]!, TestClient.payload(offers[2]!, () => 9));
    expect(late).toMatchObject({ ok: false, error: { code: 'FL_ERR_ROUND_STATE' } });
    const next = await cs[2]!.nextOffer();
    expect(next).toMatchObject({ round: 1, attempt: 0 });
    expect(h.coordinator.store.rounds(jobId)[0]!.participants.sort()).toEqual([cs[0]!.clientId, cs[1]!.clientId].sort());
  });

  it('survives 30% of clients dropping mid-round: over-selection still reaches quorum', async () => {
    const h = await t.start();
    // k = 7, over-selection 0.42: ceil(9.94) = 10 offered; 3 drop after their offer.
    const { jobId, cs } = await setup({ strategy: 'fedavg', rounds: 2, clientsPerRound: 7, minClients: 5, overSelection: 0.42, roundDeadlineSeconds: 30 }, 10);
    expect(offeredCount(jobId)).toBe(10);
    const offers = await Promise.all(cs.map((c) => c.nextOffer()));
    expect(new Set(offers.map((o) => o.round))).toEqual(new Set([0]));
    for (const c of cs.slice(7)) c.close();
    const acks = await Promise.all(cs.slice(0, 7).map((c, k) => c.send(offers[k]!, TestClient.payload(offers[k]!, () => k, 1 + k))));
    expect(acks.every((a) => a.ok)).toBe(true);
    const result = await cs[0]!.next('round_result');
    expect(result).toMatchObject({ round: 0, participants: 7 });
    const view = JobViewSchema.parse((await h.api('GET', `/api/jobs/${jobId}`)).json);
    expect(view.roundsDetail[0]!.participants).toHaveLength(7);
  });

  it('ends a round early when every selected client that could answer has (the rest disconnected)', async () => {
    await t.start();
    const { jobId, cs } = await setup({ strategy: 'ffa', rounds: 1, clientsPerRound: 3, minClients: 2, overSelection: 0, roundDeadlineSeconds: 600 }, 3);
    const offers = await Promise.all(cs.map((c) => c.nextOffer()));
    await Promise.all([0, 1].map((k) => cs[k]!.send(offers[k]!, TestClient.payload(offers[k]!, () => k, 5))));
    cs[2]!.close();
    // Without the early end this would wait for the 600 s deadline.
    expect(await cs[0]!.next('job_end')).toMatchObject({ jobId, status: 'completed', rounds: 1 });
  });
});
