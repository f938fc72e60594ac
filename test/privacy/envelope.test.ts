import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import nacl from 'tweetnacl';
import fc from 'fast-check';
import { ENVELOPE_OVERHEAD, MAX_HEADER_BYTES, decodeHeader, maxEnvelopeBytes, openUpdate, parseEnvelope, sealUpdate, type ExpectedBinding } from '../../privacy/envelope.js';
import type { NonceKey, NonceStore } from '../../privacy/nonces.js';
import { MemoryNonceStore } from '../../privacy/nonces.js';
import { isFedloraError, type ErrorCode } from '../../shared/errors.js';

const coordinator = nacl.box.keyPair();
const alice = nacl.sign.keyPair();
const mallory = nacl.sign.keyPair();
const binding = { jobId: 'job-1', round: 3, clientId: 'alice' };
const expected: ExpectedBinding = { jobId: 'job-1', round: 3, clientId: 'alice' };

function payloadOf(n: number): Uint8Array {
  const p = new Uint8Array(n);
  for (let i = 0; i < n; i++) p[i] = (i * 31 + 7) & 0xff;
  return p;
}

/** The error code an opening fails with (the test fails if it succeeds). */
async function failure(promise: Promise<unknown>): Promise<ErrorCode> {
  try {
    await promise;
  } catch (e) {
    if (isFedloraError(e)) return e.code;
    throw e;
  }
  throw new Error('expected the envelope to be refused');
}

const open = (env: Uint8Array, opts: { expect?: ExpectedBinding; key?: Uint8Array; store?: MemoryNonceStore; boxKey?: Uint8Array; maxBytes?: number } = {}) =>
  openUpdate(env, opts.expect ?? expected, opts.key ?? alice.publicKey, opts.boxKey ?? coordinator.secretKey, opts.store ?? new MemoryNonceStore(), opts.maxBytes === undefined ? {} : { maxBytes: opts.maxBytes });

describe('sealUpdate / openUpdate round trip', () => {
  it('opens what it seals, with the binding in the header', async () => {
    const payload = payloadOf(10_000);
    const env = sealUpdate(payload, binding, alice.secretKey, coordinator.publicKey, { now: 1_700_000_000_000 });
    const opened = await open(env);
    expect(opened.payload).toEqual(payload);
    expect(opened.header).toMatchObject({ jobId: 'job-1', round: 3, attempt: 0, clientId: 'alice', createdAt: 1_700_000_000_000 });
    expect(env.length).toBe(ENVELOPE_OVERHEAD + parseEnvelope(env).headerBytes.length + 16 + 32 + payload.length);
  });

  it('round-trips the empty payload and looks up the signer by client id', async () => {
    const env = sealUpdate(new Uint8Array(0), binding, alice.secretKey, coordinator.publicKey);
    const keys = new Map([['alice', alice.publicKey]]);
    const opened = await openUpdate(env, { jobId: 'job-1', round: 3 }, (id) => keys.get(id), coordinator.secretKey, new MemoryNonceStore());
    expect(opened.payload.length).toBe(0);
  });

  it('property: any payload and binding round-trips, within maxEnvelopeBytes', async () => {
    const id = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 3000 }), id, id, fc.nat(1e9), fc.nat(100), async (payload, jobId, clientId, round, attempt) => {
        const b = { jobId, clientId, round, attempt };
        const env = sealUpdate(payload, b, alice.secretKey, coordinator.publicKey);
        expect(env.length).toBeLessThanOrEqual(maxEnvelopeBytes(payload.length));
        const opened = await openUpdate(env, b, alice.publicKey, coordinator.secretKey, new MemoryNonceStore(), { maxBytes: maxEnvelopeBytes(payload.length) });
        expect(opened.payload).toEqual(payload);
        expect(opened.header).toMatchObject(b);
      }),
      { numRuns: 60 },
    );
    expect(maxEnvelopeBytes(0)).toBe(ENVELOPE_OVERHEAD + MAX_HEADER_BYTES + 48);
  });

  it('opens an envelope that is a view into a larger buffer (as socket.io hands over Buffers)', async () => {
    const env = sealUpdate(payloadOf(3000), binding, alice.secretKey, coordinator.publicKey);
    const pool = new Uint8Array(env.length + 2001).fill(0xa5); // garbage around it
    pool.set(env, 1001);
    const view = Buffer.from(pool.buffer, 1001, env.length);
    const opened = await open(view);
    expect(opened.payload).toEqual(payloadOf(3000));
    expect(pool.subarray(0, 1001).every((b) => b === 0xa5)).toBe(true); // nothing written around it
    expect(pool.subarray(1001, 1001 + env.length)).toEqual(env); // nor into it
  });

  it('works with an asynchronous nonce store (a network database)', async () => {
    const seen = new Set<string>();
    const id = (k: NonceKey) => `${k.jobId}/${k.round}/${k.clientId}/${k.nonce}`;
    const store: NonceStore = {
      has: async (k) => seen.has(id(k)),
      checkAndAdd: async (k) => (seen.has(id(k)) ? false : (seen.add(id(k)), true)),
    };
    const env = sealUpdate(payloadOf(10), binding, alice.secretKey, coordinator.publicKey);
    await openUpdate(env, expected, alice.publicKey, coordinator.secretKey, store);
    expect(await failure(openUpdate(env, expected, alice.publicKey, coordinator.secretKey, store))).toBe('FL_ERR_ENVELOPE_REPLAY');
  });

  it('uses a fresh nonce and ephemeral key per message, so equal payloads seal differently', () => {
    const a = decodeHeader(parseEnvelope(sealUpdate(payloadOf(8), binding, alice.secretKey, coordinator.publicKey)).headerBytes);
    const b = decodeHeader(parseEnvelope(sealUpdate(payloadOf(8), binding, alice.secretKey, coordinator.publicKey)).headerBytes);
    expect(a.nonce).not.toBe(b.nonce);
    expect(a.ephemeralPublicKey).not.toBe(b.ephemeralPublicKey);
  });

  it('the ciphertext is a plain nacl.box (libsodium crypto_box_easy) of sha256(header) || payload', () => {
    // Independent check of the wire format: open the box with nacl directly, outside openUpdate.
    const payload = payloadOf(100);
    const parts = parseEnvelope(sealUpdate(payload, binding, alice.secretKey, coordinator.publicKey));
    const h = decodeHeader(parts.headerBytes);
    const inner = nacl.box.open(parts.ciphertext, Buffer.from(h.nonce, 'base64'), Buffer.from(h.ephemeralPublicKey, 'base64'), coordinator.secretKey)!;
    expect(Buffer.from(inner.subarray(0, 32)).toString('hex')).toBe(createHash('sha256').update(parts.headerBytes).digest('hex'));
    expect(inner.subarray(32)).toEqual(payload);
    const message = Buffer.concat([Buffer.from('fedlora-update-envelope-v1\n'), createHash('sha256').update(parts.signed).digest()]);
    expect(nacl.sign.detached.verify(message, parts.signature, alice.publicKey)).toBe(true);
  });
});

describe('tampering', () => {
  it('every single changed byte is refused; in header, ciphertext or signature it is a signature failure', async () => {
    const env = sealUpdate(payloadOf(40), binding, alice.secretKey, coordinator.publicKey);
    const h = parseEnvelope(env).headerBytes.length;
    for (let i = 0; i < env.length; i++) {
      const bad = env.slice();
      bad[i]! ^= 0x01;
      const code = await failure(open(bad));
      const framing = i < 9 || (i >= 9 + h && i < 13 + h); // magic, version, the two lengths
      expect([i, code]).toEqual([i, framing ? expect.stringMatching(/^FL_ERR_ENVELOPE_(MALFORMED|SIGNATURE)$/) : 'FL_ERR_ENVELOPE_SIGNATURE']);
    }
  });

  it('fuzz: random edits (flips, cuts, insertions) are always refused with an envelope code, never crash', async () => {
    const env = sealUpdate(payloadOf(64), binding, alice.secretKey, coordinator.publicKey);
    const edit = fc.oneof(
      fc.record({ kind: fc.constant('set' as const), at: fc.nat(env.length - 1), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('cut' as const), at: fc.nat(env.length - 1), value: fc.constant(0) }),
      fc.record({ kind: fc.constant('insert' as const), at: fc.nat(env.length), value: fc.integer({ min: 0, max: 255 }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(edit, { minLength: 1, maxLength: 4 }), async (edits) => {
        let bytes = Array.from(env);
        for (const e of edits) {
          if (e.kind === 'set') bytes[Math.min(e.at, bytes.length - 1)] = e.value;
          else if (e.kind === 'cut') bytes = bytes.slice(0, Math.min(e.at, bytes.length));
          else bytes.splice(Math.min(e.at, bytes.length), 0, e.value);
        }
        const mutated = Uint8Array.from(bytes);
        fc.pre(Buffer.compare(mutated, env) !== 0); // a 'set' may write the byte already there
        const code = await failure(open(mutated));
        expect(code).toMatch(/^FL_ERR_ENVELOPE_(MALFORMED|SIGNATURE)$/);
      }),
      { numRuns: 300 },
    );
  });

  it('a missing signature, a truncated envelope, trailing bytes, and an oversized one each get their code', async () => {
    const env = sealUpdate(payloadOf(200), binding, alice.secretKey, coordinator.publicKey);
    expect(await failure(open(env.subarray(0, env.length - 64)))).toBe('FL_ERR_ENVELOPE_SIGNATURE');
    expect(await failure(open(env.subarray(0, env.length - 10)))).toBe('FL_ERR_ENVELOPE_MALFORMED');
    expect(await failure(open(env.subarray(0, 100)))).toBe('FL_ERR_ENVELOPE_MALFORMED');
    expect(await failure(open(env.subarray(0, 5)))).toBe('FL_ERR_ENVELOPE_MALFORMED');
    expect(await failure(open(new Uint8Array(0)))).toBe('FL_ERR_ENVELOPE_MALFORMED');
    const longer = new Uint8Array(env.length + 1);
    longer.set(env);
    expect(await failure(open(longer))).toBe('FL_ERR_ENVELOPE_MALFORMED');
    expect(await failure(open(env, { maxBytes: env.length - 1 }))).toBe('FL_ERR_ENVELOPE_MALFORMED');
    await expect(open(env, { maxBytes: env.length })).resolves.toBeDefined();
    await expect(open(env, { maxBytes: Number.NaN })).rejects.toThrow(/FL_ERR_INVALID_ARGUMENT: maxBytes must be an integer >= 1, got NaN/);
  });

  it('error messages say what is wrong', async () => {
    const env = sealUpdate(payloadOf(10), binding, alice.secretKey, coordinator.publicKey);
    await expect(open(env, { maxBytes: 100 })).rejects.toThrow(/envelope is \d+ bytes, more than the 100 allowed \(maxBytes\)/);
    await expect(open(env.subarray(0, env.length - 64))).rejects.toThrow(/no signature/);
    const wrongMagic = env.slice();
    wrongMagic[0] = 0;
    await expect(open(wrongMagic)).rejects.toThrow(/magic/);
    const v2 = env.slice();
    v2[4] = 2;
    await expect(open(v2)).rejects.toThrow(/version 2 is not supported/);
  });
});

describe('keys', () => {
  it('a signature by another client key is a signature failure', async () => {
    const env = sealUpdate(payloadOf(10), binding, mallory.secretKey, coordinator.publicKey);
    expect(await failure(open(env))).toBe('FL_ERR_ENVELOPE_SIGNATURE');
  });

  it('an envelope sealed to another coordinator key does not decrypt', async () => {
    const other = nacl.box.keyPair();
    const env = sealUpdate(payloadOf(10), binding, alice.secretKey, other.publicKey);
    expect(await failure(open(env))).toBe('FL_ERR_ENVELOPE_DECRYPT');
    expect(await failure(open(sealUpdate(payloadOf(10), binding, alice.secretKey, coordinator.publicKey), { boxKey: other.secretKey }))).toBe('FL_ERR_ENVELOPE_DECRYPT');
  });

  it('an unknown client id in a key lookup is a signature failure naming the client', async () => {
    const env = sealUpdate(payloadOf(10), binding, alice.secretKey, coordinator.publicKey);
    await expect(openUpdate(env, { jobId: 'job-1', round: 3 }, () => undefined, coordinator.secretKey, new MemoryNonceStore())).rejects.toThrow(/FL_ERR_ENVELOPE_SIGNATURE: no signing key is known for client 'alice'/);
  });

  it('refuses keys of the wrong length with FL_ERR_INVALID_ARGUMENT', () => {
    expect(() => sealUpdate(payloadOf(1), binding, alice.publicKey, coordinator.publicKey)).toThrow(/FL_ERR_INVALID_ARGUMENT: clientSigningSecretKey must be 64 bytes/);
    expect(() => sealUpdate(payloadOf(1), binding, alice.secretKey, new Uint8Array(31))).toThrow(/coordinatorBoxPublicKey must be 32 bytes/);
    expect(() => sealUpdate(payloadOf(1), { ...binding, jobId: 'bad id!' }, alice.secretKey, coordinator.publicKey)).toThrow(/FL_ERR_INVALID_ARGUMENT: binding.jobId/);
  });
});

describe('binding and replay', () => {
  it('an envelope replayed into another round, job, attempt or client is a binding failure', async () => {
    const env = sealUpdate(payloadOf(10), { ...binding, attempt: 1 }, alice.secretKey, coordinator.publicKey);
    expect(await failure(open(env, { expect: { ...expected, round: 4 } }))).toBe('FL_ERR_ENVELOPE_BINDING');
    expect(await failure(open(env, { expect: { ...expected, jobId: 'job-2' } }))).toBe('FL_ERR_ENVELOPE_BINDING');
    expect(await failure(open(env, { expect: { ...expected, attempt: 0 } }))).toBe('FL_ERR_ENVELOPE_BINDING');
    expect(await failure(open(env, { expect: { ...expected, clientId: 'bob' } }))).toBe('FL_ERR_ENVELOPE_BINDING');
    await expect(open(env, { expect: { ...expected, round: 4 } })).rejects.toThrow(/bound to round 3 \(expected 4\)/);
    await expect(open(env, { expect: { ...expected, attempt: 1 } })).resolves.toBeDefined();
  });

  it('the same envelope twice is a replay; the nonce is recorded only after a successful opening', async () => {
    const store = new MemoryNonceStore();
    const env = sealUpdate(payloadOf(10), binding, alice.secretKey, coordinator.publicKey);
    expect(await failure(open(env, { store, boxKey: nacl.box.keyPair().secretKey }))).toBe('FL_ERR_ENVELOPE_DECRYPT');
    expect(store.size).toBe(0); // a failed opening burns no nonce
    await open(env, { store });
    expect(store.size).toBe(1);
    expect(await failure(open(env, { store }))).toBe('FL_ERR_ENVELOPE_REPLAY');
    // a new envelope (fresh nonce) for the same binding opens: deduplicating updates is the round's job
    await expect(open(sealUpdate(payloadOf(10), binding, alice.secretKey, coordinator.publicKey), { store })).resolves.toBeDefined();
  });

  it('two concurrent openings of one envelope: exactly one succeeds (atomic checkAndAdd)', async () => {
    const store = new MemoryNonceStore();
    const env = sealUpdate(payloadOf(1000), binding, alice.secretKey, coordinator.publicKey);
    const results = await Promise.allSettled([open(env, { store }), open(env, { store })]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(isFedloraError(rejected.reason, 'FL_ERR_ENVELOPE_REPLAY')).toBe(true);
  });

  it('a re-signed copy (another client claims the ciphertext) is a binding failure', async () => {
    // Mallory takes Alice's envelope, rewrites the header to her own client id and signs it with
    // her own key: the signature verifies, but the sealed header hash does not match.
    const env = sealUpdate(payloadOf(64), binding, alice.secretKey, coordinator.publicKey);
    const parts = parseEnvelope(env);
    const header = { ...decodeHeader(parts.headerBytes), clientId: 'mallory' };
    const headerBytes = new TextEncoder().encode(JSON.stringify(header));
    const forged = new Uint8Array(ENVELOPE_OVERHEAD + headerBytes.length + parts.ciphertext.length);
    const view = new DataView(forged.buffer);
    forged.set(env.subarray(0, 5), 0);
    view.setUint32(5, headerBytes.length, true);
    forged.set(headerBytes, 9);
    view.setUint32(9 + headerBytes.length, parts.ciphertext.length, true);
    forged.set(parts.ciphertext, 13 + headerBytes.length);
    const signedEnd = forged.length - 64;
    const message = Buffer.concat([Buffer.from('fedlora-update-envelope-v1\n'), createHash('sha256').update(forged.subarray(0, signedEnd)).digest()]);
    forged.set(nacl.sign.detached(message, mallory.secretKey), signedEnd);
    const code = await failure(open(forged, { expect: { jobId: 'job-1', round: 3, clientId: 'mallory' }, key: mallory.publicKey }));
    expect(code).toBe('FL_ERR_ENVELOPE_BINDING');
  });
});
