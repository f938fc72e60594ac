import { describe, expect, it } from 'vitest';
import { EnrolmentResponseSchema, JobViewSchema } from '../../../shared/protocol/http.js';
import { decodeGlobalState } from '../../../coordinator/state-codec.js';
import { SHA } from '../helpers.js';
import { useEngineHarness } from './harness.js';
import { TestClient } from '../protocol-client.js';

const modules = [
  { path: 'model.layers.0.self_attn.q_proj', outFeatures: 6, inFeatures: 5 },
  { path: 'model.layers.0.self_attn.v_proj', outFeatures: 3, inFeatures: 5 },
];

const t = useEngineHarness({ modules, job: { model: { sha256: SHA, targetModules: ['q_proj', 'v_proj'] }, rank: 2, seed: 7 } });
const clients = t.clients;


describe('round engine over socket.io: a full fedavg job', () => {
  it('offers, aggregates exactly (checked in float64), commits every round and completes', async () => {
    const h = await t.start();
    const jobId = await t.createJob({ strategy: 'fedavg', rounds: 2, clientsPerRound: 2, minClients: 2, overSelection: 0 });
    const [c1, c2] = await t.enrol(jobId, 2);
    const examples = [3, 7];
    for (let round = 0; round < 2; round++) {
      const offers = await Promise.all([c1!.nextOffer(), c2!.nextOffer()]);
      for (const o of offers) {
        expect(o).toMatchObject({ jobId, round, attempt: 0 });
        expect(o.plan).toMatchObject({ strategy: 'fedavg', variant: 'lora', rank: 2, trainable: ['A', 'B'], start: 'global' });
        expect(o.plan.updateTensors.map((t) => t.name).sort()).toEqual(
          ['q_proj', 'v_proj'].flatMap((m) => ['A', 'B'].map((f) => `base_model.model.model.layers.0.self_attn.${m}.lora_${f}.weight`)).sort(),
        );
      }
      // Client k sends value (k + 1) * (round + 1) + i / 100 at flat index i of every tensor.
      const value = (k: number) => (_name: string, i: number) => (k + 1) * (round + 1) + i / 100;
      const acks = await Promise.all([
        c1!.send(offers[0]!, TestClient.payload(offers[0]!, value(0), examples[0], { loss: 2 })),
        c2!.send(offers[1]!, TestClient.payload(offers[1]!, value(1), examples[1], { loss: 1 })),
      ]);
      expect(acks).toEqual([{ ok: true, jobId, round }, { ok: true, jobId, round }]);
      const result = await c1!.next('round_result');
      expect(result).toMatchObject({ jobId, round, participants: 2 });
      // Example-weighted mean loss: (3 * 2 + 7 * 1) / 10.
      expect(result.metrics.loss).toBeCloseTo(1.3, 12);
      expect(result.metrics.examples).toBe(10);

      // Independent check of the committed state: the example-weighted mean of each factor, in
      // float64, then rounded once to float32; the strategy sums in float64 too, so they agree to
      // float32 rounding (one ulp: relative 6e-8).
      const state = decodeGlobalState(t.h.coordinator.store.latestState(jobId)!);
      expect(state.round).toBe(round + 1);
      for (const m of modules) {
        const f = state.adapter!.factors.get(m.path)!;
        for (const factor of ['A', 'B'] as const) {
          const got = f[factor]!;
          for (let i = 0; i < got.length; i++) {
            const expected = (3 * value(0)('', i) + 7 * value(1)('', i)) / 10;
            expect(Math.abs(got[i]! - expected)).toBeLessThanOrEqual(Math.abs(expected) * 1.2e-7);
          }
        }
      }
    }
    const end = await c1!.next('job_end');
    expect(end).toEqual({ jobId, status: 'completed', rounds: 2 });
    const view = JobViewSchema.parse((await h.api('GET', `/api/jobs/${jobId}`)).json);
    expect(view).toMatchObject({ status: 'completed', round: 2, rounds: 2, clients: 2 });
    expect(view.clientList.map((c) => [c.id, c.backend.name, c.connected]).sort()).toEqual([[c1!.clientId, 'test', true], [c2!.clientId, 'test', true]].sort());
    expect(view.roundsDetail.map((r) => [r.round, r.accepted, r.refused, r.participants.length])).toEqual([
      [0, 2, 0, 2],
      [1, 2, 0, 2],
    ]);
    const adapter = await h.api('GET', `/api/jobs/${jobId}/adapter`);
    expect(adapter.status).toBe(200);
  });
});

describe('round engine: joining', () => {
  it('refuses a wrong base model, a reused token, an impostor signature; lets an enrolled client back in', async () => {
    const h = await t.start();
    const jobId = await t.createJob({ strategy: 'ffa', rounds: 1, clientsPerRound: 2, minClients: 2 });
    const { token } = EnrolmentResponseSchema.parse((await h.api('POST', `/api/jobs/${jobId}/enrolments`)).json);

    const wrongModel = new TestClient(h.coordinator.url);
    clients.push(wrongModel);
    await expect(wrongModel.join({ jobId, token, sha256: 'cd'.repeat(32), modules })).rejects.toMatchObject({ code: 'FL_ERR_BASE_MODEL_MISMATCH' });
    await wrongModel.whenDisconnected();

    const impostor = new TestClient(h.coordinator.url);
    clients.push(impostor);
    await expect(impostor.join({ jobId, token, sha256: SHA, modules, signWith: new TestClient(h.coordinator.url).keys })).rejects.toMatchObject({ code: 'FL_ERR_UNAUTHORIZED' });

    const good = new TestClient(h.coordinator.url);
    clients.push(good);
    const welcome = await good.join({ jobId, token, sha256: SHA, modules });
    expect(welcome).toMatchObject({ jobId, strategy: 'ffa', round: 0, rank: 2, status: 'running' });

    const reuse = new TestClient(h.coordinator.url);
    clients.push(reuse);
    await expect(reuse.join({ jobId, token, sha256: SHA, modules })).rejects.toMatchObject({ code: 'FL_ERR_ENROLMENT' });

    // The job fixed its modules from the first client: another layout is refused.
    const other = new TestClient(h.coordinator.url);
    clients.push(other);
    const { token: t2 } = EnrolmentResponseSchema.parse((await h.api('POST', `/api/jobs/${jobId}/enrolments`)).json);
    await expect(other.join({ jobId, token: t2, sha256: SHA, modules: [modules[0]!] })).rejects.toMatchObject({ code: 'FL_ERR_BASE_MODEL_MISMATCH' });

    good.close();
    const back = new TestClient(h.coordinator.url, good.keys);
    clients.push(back);
    expect((await back.join({ jobId, clientId: welcome.clientId, sha256: SHA, modules })).clientId).toBe(welcome.clientId);
    const stolen = new TestClient(h.coordinator.url);
    clients.push(stolen);
    await expect(stolen.join({ jobId, clientId: welcome.clientId, sha256: SHA, modules })).rejects.toMatchObject({ code: 'FL_ERR_UNAUTHORIZED' });
  });

  it('refuses a malformed hello with FL_ERR_INVALID_ARGUMENT naming the field', async () => {
    const h = await t.start();
    const c = new TestClient(h.coordinator.url);
    clients.push(c);
    c.socket.emit('hello', { protocolVersion: 1, jobId: 'job_x' } as never);
    const refusal = await c.next('refusal');
    expect(refusal.code).toBe('FL_ERR_INVALID_ARGUMENT');
    expect(refusal.message).toMatch(/signPublicKey/);
    await c.whenDisconnected();
  });
});

describe('round engine: reconnecting mid-round', () => {
  it('re-offers the same plan to a selected client that comes back, and the round completes', async () => {
    const h = await t.start();
    const jobId = await t.createJob({ strategy: 'fedsb', rounds: 1, clientsPerRound: 2, minClients: 2, overSelection: 0 });
    const [c1, c2] = await t.enrol(jobId, 2);
    const first = await c1!.nextOffer();
    const offer2 = await c2!.nextOffer();
    c1!.close();
    await c1!.whenDisconnected();
    const back = new TestClient(h.coordinator.url, c1!.keys);
    clients.push(back);
    await back.join({ jobId, clientId: c1!.clientId, sha256: SHA, modules });
    const again = await back.nextOffer();
    expect({ ...again, state: [...again.state] }).toEqual({ ...first, state: [...first.state] });
    const acks = await Promise.all([back.send(again, TestClient.payload(again, () => 1, 3)), c2!.send(offer2, TestClient.payload(offer2, () => 2, 3))]);
    expect(acks.every((a) => a.ok)).toBe(true);
    expect(await back.next('job_end')).toMatchObject({ status: 'completed', rounds: 1 });
  });
});
