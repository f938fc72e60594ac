import { describe, expect, it } from 'vitest';
import { EnrolmentResponseSchema, JobViewSchema } from '../../../shared/protocol/http.js';
import { encodeSafetensors } from '../../../shared/safetensors/index.js';
import { makeTensor, numel } from '../../../shared/tensor.js';
import { generateKeyPairs } from '../../../privacy/keys.js';
import { SHA } from '../helpers.js';
import { useEngineHarness } from './harness.js';
import { TestClient } from '../protocol-client.js';
import { MAX_REFUSALS_RECORDED } from '../../../coordinator/engine/job-runner.js';

const modules = [
  { path: 'model.layers.0.self_attn.q_proj', outFeatures: 6, inFeatures: 5 },
  { path: 'model.layers.1.self_attn.q_proj', outFeatures: 6, inFeatures: 5 },
];

const t = useEngineHarness({ modules, job: { model: { sha256: SHA, targetModules: ['q_proj'] }, rank: 2, seed: 3 } });
const clients = t.clients;

async function setup(body: Record<string, unknown>, n: number): Promise<{ jobId: string; cs: TestClient[] }> {
  const jobId = await t.createJob(body);
  return { jobId, cs: await t.enrol(jobId, n) };
}

describe('round engine: bad updates are refused with their code while the round completes', () => {
  it('malformed, oversized, NaN, wrong-shape, wrong-dtype, unsigned, wrong-key, replayed, wrong-job, wrong-round, unplanned', async () => {
    const h = await t.start();
    const { jobId, cs } = await setup({ strategy: 'fedsb', rounds: 1, clientsPerRound: 2, minClients: 2, overSelection: 0.5 }, 3);
    const offers = await Promise.all(cs.map((c) => c.nextOffer()));
    const [bad, good1, good2] = cs as [TestClient, TestClient, TestClient];
    const [offer, offer1, offer2] = offers as [(typeof offers)[0], (typeof offers)[0], (typeof offers)[0]];
    expect(offer.plan).toMatchObject({ variant: 'fedsb', trainable: ['R'], start: 'global' });
    expect(offer.plan.updateTensors).toEqual(modules.map((m) => ({ name: `base_model.model.${m.path}.fedsb_R.weight`, shape: [2, 2] })));
    const ok = TestClient.payload(offer, (_n, i) => i);

    const refusals: Array<[string, Promise<unknown>]> = [];
    const expectRefused = async (code: string, ack: Promise<{ ok: boolean }>, pattern?: RegExp): Promise<void> => {
      const result = (await ack) as { ok: boolean; error?: { code: string; message: string } };
      expect(result.ok, `${code}: ${JSON.stringify(result)}`).toBe(false);
      expect(result.error!.code).toBe(code);
      if (pattern) expect(result.error!.message).toMatch(pattern);
      refusals.push([code, Promise.resolve()]);
    };

    // Framing and size.
    await expectRefused('FL_ERR_ENVELOPE_MALFORMED', bad.sendRaw({ jobId, round: 0, attempt: offer.attempt, envelope: new Uint8Array(200).fill(1) }), /magic/);
    await expectRefused('FL_ERR_UPDATE_TOO_LARGE', bad.sendRaw({ jobId, round: 0, attempt: offer.attempt, envelope: new Uint8Array(offer.maxUpdateBytes + 1) }), /limit/);
    await expectRefused('FL_ERR_INVALID_ARGUMENT', bad.sendRaw({ jobId, round: 0, attempt: 0, envelope: 'not bytes' as never }), /envelope/);
    // Content.
    await expectRefused('FL_ERR_UPDATE_NOT_FINITE', bad.send(offer, TestClient.payload(offer, (_n, i) => (i === 3 ? NaN : 1))), /fedsb_R\.weight.*index 3/);
    const wrongShape = encodeSafetensors(offer.plan.updateTensors.map((t) => makeTensor(t.name, [4], new Float32Array(4))), { 'fedlora.examples': '5' });
    await expectRefused('FL_ERR_SHAPE_MISMATCH', bad.send(offer, wrongShape), /shape \[4\].*\[2, 2\]/);
    const missing = encodeSafetensors([makeTensor(offer.plan.updateTensors[0]!.name, [2, 2], new Float32Array(4))], { 'fedlora.examples': '5' });
    await expectRefused('FL_ERR_UPDATE_TENSORS', bad.send(offer, missing), /missing/);
    const extra = encodeSafetensors(
      [...offer.plan.updateTensors.map((t) => makeTensor(t.name, t.shape, new Float32Array(numel(t.shape)))), makeTensor('base_model.model.x.lora_A.weight', [1, 1], new Float32Array(1))],
      { 'fedlora.examples': '5' },
    );
    await expectRefused('FL_ERR_UPDATE_TENSORS', bad.send(offer, extra), /not one the plan asks for/);
    const noExamples = encodeSafetensors(offer.plan.updateTensors.map((t) => makeTensor(t.name, t.shape, new Float32Array(numel(t.shape)))));
    await expectRefused('FL_ERR_UPDATE_METADATA', bad.send(offer, noExamples), /fedlora\.examples/);
    // An F16 tensor, written byte by byte: an 8-byte header length, the JSON header, then 2-byte halves.
    const f16Header = JSON.stringify(Object.fromEntries([['__metadata__', { 'fedlora.examples': '5' }], ...offer.plan.updateTensors.map((t, k) => [t.name, { dtype: 'F16', shape: t.shape, data_offsets: [8 * k, 8 * k + 8] }])]));
    const padded = f16Header + ' '.repeat((8 - (f16Header.length % 8)) % 8);
    const f16 = new Uint8Array(8 + padded.length + 16);
    new DataView(f16.buffer).setBigUint64(0, BigInt(padded.length), true);
    f16.set(new TextEncoder().encode(padded), 8);
    await expectRefused('FL_ERR_UPDATE_DTYPE', bad.send(offer, f16), /F16/);
    await expectRefused('FL_ERR_SAFETENSORS_TRUNCATED', bad.send(offer, new Uint8Array([1, 2, 3])));
    // Crypto and binding.
    const { sealUpdate } = await import('../../../privacy/envelope.js');
    const sealed = sealUpdate(ok, { jobId, round: 0, attempt: offer.attempt, clientId: bad.clientId }, bad.keys.sign.secretKey, bad.coordinatorBoxKey);
    await expectRefused('FL_ERR_ENVELOPE_SIGNATURE', bad.sendRaw({ jobId, round: 0, attempt: offer.attempt, envelope: sealed.subarray(0, sealed.length - 64) }), /no signature/);
    await expectRefused('FL_ERR_ENVELOPE_SIGNATURE', bad.send(offer, ok, {}, generateKeyPairs()), /does not verify/);
    await expectRefused('FL_ERR_ENVELOPE_BINDING', bad.send(offer, ok, { jobId: 'job_other' }), /job 'job_other'/);
    await expectRefused('FL_ERR_ENVELOPE_BINDING', bad.send(offer, ok, { round: 5 }), /round 5/);
    await expectRefused('FL_ERR_ENVELOPE_BINDING', bad.sendRaw({ jobId: 'job_other', round: 0, attempt: offer.attempt, envelope: sealed }), /belongs to job/);
    await expectRefused('FL_ERR_ROUND_STATE', bad.sendRaw({ jobId, round: 4, attempt: offer.attempt, envelope: sealed }), /round 4/);
    const tampered = sealed.slice();
    tampered[tampered.length - 100] ^= 1;
    await expectRefused('FL_ERR_ENVELOPE_SIGNATURE', bad.sendRaw({ jobId, round: 0, attempt: offer.attempt, envelope: tampered }));
    const toOtherKey = sealUpdate(ok, { jobId, round: 0, attempt: offer.attempt, clientId: bad.clientId }, bad.keys.sign.secretKey, generateKeyPairs().box.publicKey);
    await expectRefused('FL_ERR_ENVELOPE_DECRYPT', bad.sendRaw({ jobId, round: 0, attempt: offer.attempt, envelope: toOtherKey }));

    // The round is still open: the good clients' updates are accepted and it commits; an
    // accepted envelope sent again while the round is open is a replay.
    const sealed1 = sealUpdate(TestClient.payload(offer1, () => 1, 4), { jobId, round: 0, attempt: offer1.attempt, clientId: good1.clientId }, good1.keys.sign.secretKey, good1.coordinatorBoxKey);
    expect(await good1.sendRaw({ jobId, round: 0, attempt: offer1.attempt, envelope: sealed1 })).toEqual({ ok: true, jobId, round: 0 });
    await expectRefused('FL_ERR_ENVELOPE_REPLAY', good1.sendRaw({ jobId, round: 0, attempt: offer1.attempt, envelope: sealed1 }), /already used/);
    // The same client with a fresh envelope: it already has an accepted update.
    await expectRefused('FL_ERR_ROUND_STATE', good1.send(offer1, TestClient.payload(offer1, () => 1, 4)), /already has an accepted update/);
    expect(await good2.send(offer2, TestClient.payload(offer2, () => 3, 12))).toEqual({ ok: true, jobId, round: 0 });
    const result = await good1.next('round_result');
    expect(result).toMatchObject({ round: 0, participants: 2 });
    // The bad client, still waiting, was told its round closed.
    expect(await bad.next('round_closed')).toEqual({ jobId, round: 0, attempt: offer.attempt, reason: 'quorum' });

    // The committed R is the example-weighted mean: (4 * 1 + 12 * 3) / 16 = 2.5 exactly.
    const { decodeGlobalState } = await import('../../../coordinator/state-codec.js');
    const state = decodeGlobalState(h.coordinator.store.latestState(jobId)!);
    for (const m of modules) expect([...state.adapter!.factors.get(m.path)!.R!]).toEqual([2.5, 2.5, 2.5, 2.5]);

    // Records and metrics name every refusal.
    const view = JobViewSchema.parse((await h.api('GET', `/api/jobs/${jobId}`)).json);
    expect(view.status).toBe('completed');
    const records = h.coordinator.store.updates(jobId, 0);
    const refusedCodes = records.filter((r) => r.status === 'refused').map((r) => r.reasonCode);
    expect(refusedCodes).toContain('FL_ERR_UPDATE_NOT_FINITE');
    expect(refusedCodes).toContain('FL_ERR_ENVELOPE_DECRYPT');
    expect(records.filter((r) => r.status === 'accepted').map((r) => r.clientId).sort()).toEqual([good1.clientId, good2.clientId].sort());
    const text = new TextDecoder().decode((await h.api('GET', '/metrics', undefined, null)).bytes);
    expect(text).toMatch(/fedlora_updates_refused_total\{reason="FL_ERR_UPDATE_NOT_FINITE"\} 1/);
    expect(text).toMatch(/fedlora_updates_refused_total\{reason="FL_ERR_ENVELOPE_REPLAY"\} 1/);
    expect(text).toMatch(/fedlora_updates_accepted_total 2/);
    expect(text).toMatch(/fedlora_rounds_total\{outcome="committed"\} 1/);
  });

  it('refuses an update from a client that was not selected', async () => {
    const h = await t.start();
    const { jobId, cs } = await setup({ strategy: 'ffa', rounds: 1, clientsPerRound: 1, minClients: 1, overSelection: 0 }, 1);
    const offer = await cs[0]!.nextOffer();
    const { token } = EnrolmentResponseSchema.parse((await h.api('POST', `/api/jobs/${jobId}/enrolments`)).json);
    const late = new TestClient(h.coordinator.url);
    clients.push(late);
    await late.join({ jobId, token, sha256: SHA, modules });
    const ack = await late.send(offer, TestClient.payload(offer, () => 0));
    expect(ack).toMatchObject({ ok: false, error: { code: 'FL_ERR_ROUND_STATE' } });
    expect((ack as { error: { message: string } }).error.message).toMatch(/not selected/);
  });

  it('answers and counts every refusal of a flooding client but records a bounded number', async () => {
    const h = await t.start();
    const { jobId, cs } = await setup({ strategy: 'ffa', rounds: 1, clientsPerRound: 2, minClients: 2, overSelection: 0 }, 2);
    const offers = await Promise.all(cs.map((c) => c.nextOffer()));
    const flood = MAX_REFUSALS_RECORDED + 8;
    const acks = await Promise.all(Array.from({ length: flood }, () => cs[0]!.sendRaw({ jobId, round: 0, attempt: offers[0]!.attempt, envelope: new Uint8Array(64) })));
    expect(acks.every((a) => !a.ok && a.error.code === 'FL_ERR_ENVELOPE_MALFORMED')).toBe(true);
    await Promise.all(cs.map((c, k) => c.send(offers[k]!, TestClient.payload(offers[k]!, () => k, 2))));
    expect(await cs[0]!.next('job_end')).toMatchObject({ status: 'completed' });
    expect(h.coordinator.store.updates(jobId, 0).filter((u) => u.status === 'refused')).toHaveLength(MAX_REFUSALS_RECORDED);
    const text = new TextDecoder().decode((await h.api('GET', '/metrics', undefined, null)).bytes);
    expect(text).toContain(`fedlora_updates_refused_total{reason="FL_ERR_ENVELOPE_MALFORMED"} ${flood}`);
  });
});
