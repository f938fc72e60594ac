import { afterAll, describe, expect, it } from 'vitest';
import nacl from 'tweetnacl';
import { EnvelopeOpener } from '../../privacy/envelope-opener.js';
import { sealUpdate } from '../../privacy/envelope.js';
import { MemoryNonceStore } from '../../privacy/nonces.js';
import { isFedloraError, type ErrorCode } from '../../shared/errors.js';

const coordinator = nacl.box.keyPair();
const alice = nacl.sign.keyPair();
const binding = { jobId: 'job-1', round: 2, clientId: 'alice' };
const opener = new EnvelopeOpener({ threads: 2 });
afterAll(() => opener.close());

function payloadOf(n: number, salt: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 13 + salt) & 0xff);
}

async function failure(p: Promise<unknown>): Promise<ErrorCode> {
  try {
    await p;
  } catch (e) {
    if (isFedloraError(e)) return e.code;
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('EnvelopeOpener (decryption in worker threads)', () => {
  it('opens many envelopes concurrently, each to its own payload, leaving the inputs intact', async () => {
    const store = new MemoryNonceStore();
    const payloads = Array.from({ length: 7 }, (_, k) => payloadOf(50_000 + k * 1000, k));
    const envelopes = payloads.map((p) => sealUpdate(p, binding, alice.secretKey, coordinator.publicKey));
    const copies = envelopes.map((e) => e.slice());
    const opened = await Promise.all(envelopes.map((e) => opener.open(e, binding, alice.publicKey, coordinator.secretKey, store)));
    opened.forEach((o, k) => expect(o.payload).toEqual(payloads[k]));
    envelopes.forEach((e, k) => expect(e).toEqual(copies[k])); // not detached, not modified
    expect(store.size).toBe(7);
  });

  it('refuses with the same codes as openUpdate: decrypt, signature, binding, replay', async () => {
    const store = new MemoryNonceStore();
    const env = sealUpdate(payloadOf(1000, 1), binding, alice.secretKey, coordinator.publicKey);
    expect(await failure(opener.open(env, binding, alice.publicKey, nacl.box.keyPair().secretKey, store))).toBe('FL_ERR_ENVELOPE_DECRYPT');
    expect(store.size).toBe(0);
    const tampered = env.slice();
    tampered[tampered.length - 200]! ^= 1;
    expect(await failure(opener.open(tampered, binding, alice.publicKey, coordinator.secretKey, store))).toBe('FL_ERR_ENVELOPE_SIGNATURE');
    expect(await failure(opener.open(env, { ...binding, round: 3 }, alice.publicKey, coordinator.secretKey, store))).toBe('FL_ERR_ENVELOPE_BINDING');
    await opener.open(env, binding, alice.publicKey, coordinator.secretKey, store);
    expect(await failure(opener.open(env, binding, alice.publicKey, coordinator.secretKey, store))).toBe('FL_ERR_ENVELOPE_REPLAY');
  });

  it('a worker that dies fails only its own opening; the pool replaces it and goes on', async () => {
    const pool = new EnvelopeOpener({ threads: 1 });
    const store = new MemoryNonceStore();
    const first = sealUpdate(payloadOf(3_000_000, 3), binding, alice.secretKey, coordinator.publicKey);
    const pending = pool.open(first, binding, alice.publicKey, coordinator.secretKey, store);
    // the test reaches into the pool to kill the worker while it decrypts (no public way to crash it)
    const slots = (pool as unknown as { slots: { worker: { terminate(): Promise<number> } }[] }).slots;
    await new Promise<void>((resolve) => setImmediate(resolve)); // let open() reach dispatch
    expect(slots).toHaveLength(1);
    await slots[0]!.worker.terminate();
    expect(await failure(pending)).toBe('FL_ERR_ENVELOPE_DECRYPT');
    const second = sealUpdate(payloadOf(100, 4), binding, alice.secretKey, coordinator.publicKey);
    expect((await pool.open(second, binding, alice.publicKey, coordinator.secretKey, store)).payload).toEqual(payloadOf(100, 4));
    await pool.close();
  });

  it('refuses bad arguments and use after close', async () => {
    expect(() => new EnvelopeOpener({ threads: 0 })).toThrow(/FL_ERR_INVALID_ARGUMENT: threads must be an integer >= 1, got 0/);
    const env = sealUpdate(payloadOf(10, 2), binding, alice.secretKey, coordinator.publicKey);
    await expect(opener.open(env, binding, alice.publicKey, new Uint8Array(31), new MemoryNonceStore())).rejects.toThrow(/coordinatorBoxSecretKey must be 32 bytes/);
    const closing = new EnvelopeOpener({ threads: 1 });
    await closing.open(env, binding, alice.publicKey, coordinator.secretKey, new MemoryNonceStore());
    await closing.close();
    await expect(closing.open(env, binding, alice.publicKey, coordinator.secretKey, new MemoryNonceStore())).rejects.toThrow(/was closed/);
  });
});
