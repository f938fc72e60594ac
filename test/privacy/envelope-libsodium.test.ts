/**
 * The envelope against an independent implementation: test/privacy/envelope_libsodium.py, written
 * from the byte table in docs/privacy.md on libsodium (C, via ctypes) and Python's hashlib.
 * It shows the wire format is what the docs say and that libsodium (hence sodium-native) reads
 * and writes it: the path to a faster cipher without a format change.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import nacl from 'tweetnacl';
import { openUpdate, sealUpdate } from '../../privacy/envelope.js';
import { MemoryNonceStore } from '../../privacy/nonces.js';

const script = join(dirname(fileURLToPath(import.meta.url)), 'envelope_libsodium.py');
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const python = (mode: 'open' | 'seal', request: object) => JSON.parse(execFileSync('python3', [script, mode], { input: JSON.stringify(request), encoding: 'utf8' })) as Record<string, unknown>;

const coordinator = nacl.box.keyPair();
const client = nacl.sign.keyPair();
const binding = { jobId: 'job-7', round: 12, attempt: 1, clientId: 'client-3' };
const payload = Uint8Array.from({ length: 5000 }, (_, i) => (i * 7 + 3) & 0xff);

describe('the envelope and libsodium', () => {
  it('libsodium verifies and opens what sealUpdate seals', () => {
    const env = sealUpdate(payload, binding, client.secretKey, coordinator.publicKey);
    const r = python('open', { envelope: b64(env), coordinatorSecretKey: b64(coordinator.secretKey), clientPublicKey: b64(client.publicKey) });
    expect(r).toMatchObject({ verified: true, opened: true, headerHashMatches: true, header: binding });
    expect(r.payloadSha256).toBe(createHash('sha256').update(payload).digest('hex'));
  });

  it('libsodium rejects a changed byte and another client key', () => {
    const env = sealUpdate(payload, binding, client.secretKey, coordinator.publicKey);
    env[env.length - 100]! ^= 1; // in the ciphertext
    const tampered = python('open', { envelope: b64(env), coordinatorSecretKey: b64(coordinator.secretKey), clientPublicKey: b64(client.publicKey) });
    expect(tampered).toMatchObject({ verified: false, opened: false });
    const good = sealUpdate(payload, binding, client.secretKey, coordinator.publicKey);
    const other = python('open', { envelope: b64(good), coordinatorSecretKey: b64(coordinator.secretKey), clientPublicKey: b64(nacl.sign.keyPair().publicKey) });
    expect(other).toMatchObject({ verified: false, opened: true });
  });

  it('openUpdate opens what libsodium seals', async () => {
    const r = python('seal', { payload: b64(payload), binding, clientSecretKey: b64(client.secretKey), coordinatorPublicKey: b64(coordinator.publicKey) });
    const env = new Uint8Array(Buffer.from(r.envelope as string, 'base64'));
    const opened = await openUpdate(env, binding, client.publicKey, coordinator.secretKey, new MemoryNonceStore());
    expect(opened.payload).toEqual(payload);
    expect(opened.header).toMatchObject(binding);
  });
});
