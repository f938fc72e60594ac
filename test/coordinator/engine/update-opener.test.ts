import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairs } from '../../../privacy/keys.js';
import { sealUpdate } from '../../../privacy/envelope.js';
import { encodeSafetensors } from '../../../shared/safetensors/index.js';
import { makeTensor } from '../../../shared/tensor.js';
import type { Plan } from '../../../shared/protocol/events.js';
import { InlineOpener, WorkerPoolOpener, type OpenRequest } from '../../../coordinator/engine/update-opener.js';

const client = generateKeyPairs();
const coordinator = generateKeyPairs();
const path = 'model.layers.0.self_attn.q_proj';
const plan = {
  strategy: 'ffa', variant: 'ffa', rank: 2, alpha: 2, modules: [{ path, outFeatures: 3, inFeatures: 4, rank: 2, alpha: 2 }], trainable: ['B'], start: 'global',
  updateTensors: [{ name: `base_model.model.${path}.lora_B.weight`, shape: [3, 2] }], training: { epochs: 1, batchSize: 16, lr: 0.001, schedule: 'constant', warmupSteps: 0, weightDecay: 0 }, seed: 1, extra: {},
} as Plan;
const binding = { jobId: 'job_a', round: 2, attempt: 0, clientId: 'cl_a' };

function request(values: number[], examples = '7'): OpenRequest {
  const payload = encodeSafetensors([makeTensor(plan.updateTensors[0]!.name, [3, 2], Float32Array.from(values))], { 'fedlora.examples': examples, 'fedlora.metrics': '{"loss": 0.5}' });
  return { envelope: sealUpdate(payload, binding, client.sign.secretKey, coordinator.box.publicKey), expected: binding, signPublicKey: client.sign.publicKey, plan, source: 'cl_a', maxBytes: 1 << 20 };
}

let pool: WorkerPoolOpener;
const inline = new InlineOpener(coordinator.box.secretKey);
beforeAll(async () => {
  pool = new WorkerPoolOpener(2, coordinator.box.secretKey);
  await pool.ready;
});
afterAll(async () => {
  await pool.close();
});

describe('update openers: worker pool and inline agree', () => {
  it('open, decode and return the same update, nonce and metrics', async () => {
    const r = request([1, 2, 3, 4, 5, 6]);
    const [a, b] = await Promise.all([pool.open(r), inline.open({ ...r, envelope: r.envelope.slice() })]);
    expect(a.nonce).toBe(b.nonce);
    expect(a.metrics).toEqual({ loss: 0.5 });
    expect(a.update.numExamples).toBe(7);
    expect(a.update.source).toBe('cl_a');
    expect(a.update.adapter.layout).toEqual(b.update.adapter.layout);
    expect([...a.update.adapter.factors.get(path)!.B!]).toEqual([1, 2, 3, 4, 5, 6]);
    // The caller's envelope is untouched (the pool sends a copy).
    expect(r.envelope.length).toBeGreaterThan(0);
  });

  it('carry the coded errors across the thread boundary', async () => {
    const bad = request([1, 2, NaN, 4, 5, 6]);
    await expect(pool.open(bad)).rejects.toMatchObject({ code: 'FL_ERR_UPDATE_NOT_FINITE' });
    await expect(inline.open(bad)).rejects.toMatchObject({ code: 'FL_ERR_UPDATE_NOT_FINITE' });
    const wrongKey = { ...request([0, 0, 0, 0, 0, 0]), signPublicKey: generateKeyPairs().sign.publicKey };
    await expect(pool.open(wrongKey)).rejects.toMatchObject({ code: 'FL_ERR_ENVELOPE_SIGNATURE' });
    await expect(pool.open({ ...request([0, 0, 0, 0, 0, 0]), expected: { ...binding, round: 3 } })).rejects.toMatchObject({ code: 'FL_ERR_ENVELOPE_BINDING' });
  });

  it('keep the reason and the message as the inline opener has them (one code prefix, not two)', async () => {
    const bad = request([1, 2, NaN, 4, 5, 6]);
    const [a, b] = await Promise.all([pool.open(bad).catch((e: unknown) => e), inline.open(bad).catch((e: unknown) => e)]) as Array<{ message: string; reason: string }>;
    expect(a.reason).toBe(b.reason);
    expect(a.message).toBe(b.message);
    expect(a.reason).not.toMatch(/^FL_ERR_/);
    expect(a.message).toBe(`FL_ERR_UPDATE_NOT_FINITE: ${a.reason}`);
  });

  it('spreads concurrent work and answers each request with its own result', async () => {
    const results = await Promise.all(Array.from({ length: 8 }, (_, k) => pool.open(request([k, k, k, k, k, k], String(k + 1)))));
    expect(results.map((r) => r.update.numExamples)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(results.map((r) => r.update.adapter.factors.get(path)!.B![0])).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('transfers a large envelope that owns its buffer instead of copying it (the caller must not reuse it)', async () => {
    const bigPlan = { ...plan, modules: [{ path, outFeatures: 128, inFeatures: 4, rank: 256, alpha: 2 }], updateTensors: [{ name: `base_model.model.${path}.lora_B.weight`, shape: [128, 256] }] } as Plan;
    const values = Float32Array.from({ length: 128 * 256 }, (_, i) => i % 97);
    const payload = encodeSafetensors([makeTensor(bigPlan.updateTensors[0]!.name, [128, 256], values)], { 'fedlora.examples': '3' });
    const envelope = sealUpdate(payload, binding, client.sign.secretKey, coordinator.box.publicKey);
    expect(envelope.byteLength).toBeGreaterThan(64 * 1024);
    const result = await pool.open({ envelope, expected: binding, signPublicKey: client.sign.publicKey, plan: bigPlan, source: 'cl_a', maxBytes: 1 << 20 });
    expect(envelope.byteLength).toBe(0); // detached: moved to the worker, not copied
    expect(result.update.adapter.factors.get(path)!.B).toEqual(values);
  });
});
