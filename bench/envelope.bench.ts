/**
 * `npm run bench envelope`: seal/open throughput of the update envelope (privacy/envelope.ts) for
 * 1 MB and 33 MB payloads (33 MB: a 7B model's q/v adapters at r = 16), against baselines measured
 * in the same run on the same bytes:
 * - node:crypto chacha20-poly1305 (native AEAD): what a native cipher does on this machine;
 * - nacl.secretbox alone (tweetnacl XSalsa20-Poly1305, no key exchange, no signature): the floor
 *   of any tweetnacl-compatible envelope in pure JS.
 */
import { createCipheriv, randomBytes, randomFillSync } from 'node:crypto';
import { availableParallelism } from 'node:os';
import nacl from 'tweetnacl';
import { signEd25519, verifyEd25519 } from '../privacy/ed25519.js';
import { EnvelopeOpener } from '../privacy/envelope-opener.js';
import { openUpdate, sealUpdate } from '../privacy/envelope.js';
import { MemoryNonceStore } from '../privacy/nonces.js';
import { machineLine } from './machine.js';
import { interleavedMedians } from './timing.js';

const MB = 1e6;

export async function run(): Promise<void> {
  const coordinator = nacl.box.keyPair();
  const client = nacl.sign.keyPair();
  const binding = { jobId: 'bench', round: 0, clientId: 'client-1' };
  console.log(machineLine());
  console.log('size      seal MB/s  open MB/s  secretbox MB/s  chacha20-poly1305 MB/s  seal/secretbox  seal/chacha');
  const fixed = { seal: 0, open: 0 };
  for (const size of [1_000, 1 * MB, 33 * MB]) {
    const payload = new Uint8Array(size);
    randomFillSync(payload);

    let envelope = sealUpdate(payload, binding, client.secretKey, coordinator.publicKey);
    const key = nacl.randomBytes(32);
    const nonce = nacl.randomBytes(24);
    const aeadKey = randomBytes(32);
    const t = await interleavedMedians(size > 10 * MB ? 7 : size >= MB ? 15 : 101, {
      seal: () => {
        envelope = sealUpdate(payload, binding, client.secretKey, coordinator.publicKey);
      },
      // a fresh nonce store each time: the same envelope would otherwise be a replay
      open: () => openUpdate(envelope, { jobId: 'bench', round: 0, clientId: 'client-1' }, client.publicKey, coordinator.secretKey, new MemoryNonceStore()),
      secretbox: () => nacl.secretbox(payload, nonce, key),
      chacha: () => {
        const cipher = createCipheriv('chacha20-poly1305', aeadKey, randomBytes(12), { authTagLength: 16 });
        cipher.update(payload);
        cipher.final();
        cipher.getAuthTag();
      },
    });
    const { seal, open, secretbox, chacha } = t as Record<'seal' | 'open' | 'secretbox' | 'chacha', number>;
    if (size < MB) Object.assign(fixed, { seal, open });

    const rate = (s: number) => (size / MB / s).toFixed(1).padStart(9);
    console.log(
      `${(size >= MB ? `${size / MB} MB` : `${size / 1000} kB`).padEnd(8)} ${rate(seal)}  ${rate(open)}  ${rate(secretbox).padStart(14)}  ${rate(chacha).padStart(22)}  ${(secretbox / seal).toFixed(2).padStart(14)}  ${(chacha / seal).toFixed(3).padStart(11)}`,
    );
  }
  console.log('ratios are throughput ratios (seal / baseline): 1.00 means as fast as the baseline.');
  console.log(`per-envelope fixed cost (1 kB rows): seal ${(fixed.seal * 1e3).toFixed(2)} ms, open ${(fixed.open * 1e3).toFixed(2)} ms (X25519 in tweetnacl's JS dominates)`);

  // A round's worth of updates: K envelopes of 33 MB opened one after another on the main thread
  // (openUpdate) against the worker pool (EnvelopeOpener, one thread per core).
  const k = 8;
  const threads = availableParallelism();
  const big = new Uint8Array(33 * MB);
  randomFillSync(big);
  const round = Array.from({ length: k }, () => sealUpdate(big, binding, client.secretKey, coordinator.publicKey));
  const pool = new EnvelopeOpener({ threads });
  const expected = { jobId: 'bench', round: 0, clientId: 'client-1' };
  const r = await interleavedMedians(3, {
    sequential: async () => {
      const store = new MemoryNonceStore();
      for (const e of round) await openUpdate(e, expected, client.publicKey, coordinator.secretKey, store);
    },
    pool: async () => {
      const store = new MemoryNonceStore();
      await Promise.all(round.map((e) => pool.open(e, expected, client.publicKey, coordinator.secretKey, store)));
    },
  });
  await pool.close();
  console.log(
    `open ${k} x 33 MB: sequential openUpdate ${r.sequential!.toFixed(2)} s (${((k * 33) / r.sequential!).toFixed(0)} MB/s), ` +
      `EnvelopeOpener with ${threads} threads ${r.pool!.toFixed(2)} s (${((k * 33) / r.pool!).toFixed(0)} MB/s): ${(r.sequential! / r.pool!).toFixed(2)}x`,
  );

  // Signature verification, per call: node:crypto (what the envelope uses) against tweetnacl.
  const message = nacl.randomBytes(59); // the envelope signs a 27-byte domain + 32-byte digest
  const signature = signEd25519(message, client.secretKey);
  const calls = 200;
  const batch = (fn: () => unknown) => () => {
    for (let i = 0; i < calls; i++) fn();
  };
  const v = await interleavedMedians(5, {
    ours: batch(() => verifyEd25519(message, signature, client.publicKey)),
    theirs: batch(() => nacl.sign.detached.verify(message, signature, client.publicKey)),
  });
  const ours = v.ours! / calls;
  const theirs = v.theirs! / calls;
  console.log(`Ed25519 verify: node:crypto ${(ours * 1e3).toFixed(3)} ms, tweetnacl ${(theirs * 1e3).toFixed(3)} ms (${(theirs / ours).toFixed(0)}x)`);
}
