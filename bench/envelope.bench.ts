/**
 * `npm run bench envelope`: seal/open throughput of the update envelope (privacy/envelope.ts) for
 * 1 MB and 33 MB payloads (33 MB: a 7B model's q/v adapters at r = 16), against baselines measured
 * in the same run on the same bytes:
 * - node:crypto chacha20-poly1305 (native AEAD): what a native cipher does on this machine;
 * - nacl.secretbox alone (tweetnacl XSalsa20-Poly1305, no key exchange, no signature): the floor
 *   of any tweetnacl-compatible envelope in pure JS.
 */
import { createCipheriv, randomBytes, randomFillSync } from 'node:crypto';
import nacl from 'tweetnacl';
import { openUpdate, sealUpdate } from '../privacy/envelope.js';
import { MemoryNonceStore } from '../privacy/nonces.js';
import { machineLine } from './machine.js';

const MB = 1e6;

/** Median seconds of `reps` runs of fn (after one warm-up run). */
async function medianSeconds(reps: number, fn: () => unknown): Promise<number> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

export async function run(): Promise<void> {
  const coordinator = nacl.box.keyPair();
  const client = nacl.sign.keyPair();
  const binding = { jobId: 'bench', round: 0, clientId: 'client-1' };
  console.log(machineLine());
  console.log('size      seal MB/s  open MB/s  secretbox MB/s  chacha20-poly1305 MB/s  seal/secretbox  seal/chacha');
  for (const size of [1 * MB, 33 * MB]) {
    const payload = new Uint8Array(size);
    randomFillSync(payload);
    const reps = size > 10 * MB ? 3 : 9;

    let envelope = sealUpdate(payload, binding, client.secretKey, coordinator.publicKey);
    const seal = await medianSeconds(reps, () => {
      envelope = sealUpdate(payload, binding, client.secretKey, coordinator.publicKey);
    });
    const open = await medianSeconds(reps, async () => {
      // a fresh store each time: the same envelope would otherwise be a replay
      await openUpdate(envelope, { jobId: 'bench', round: 0, clientId: 'client-1' }, client.publicKey, coordinator.secretKey, new MemoryNonceStore());
    });

    const key = nacl.randomBytes(32);
    const nonce = nacl.randomBytes(24);
    const secretbox = await medianSeconds(reps, () => nacl.secretbox(payload, nonce, key));

    const aeadKey = randomBytes(32);
    const chacha = await medianSeconds(reps, () => {
      const cipher = createCipheriv('chacha20-poly1305', aeadKey, randomBytes(12), { authTagLength: 16 });
      cipher.update(payload);
      cipher.final();
      cipher.getAuthTag();
    });

    const rate = (s: number) => (size / MB / s).toFixed(1).padStart(9);
    console.log(
      `${`${size / MB} MB`.padEnd(8)} ${rate(seal)}  ${rate(open)}  ${rate(secretbox).padStart(14)}  ${rate(chacha).padStart(22)}  ${(secretbox / seal).toFixed(2).padStart(14)}  ${(chacha / seal).toFixed(3).padStart(11)}`,
    );
  }
  console.log('ratios are throughput ratios (seal / baseline): 1.00 means as fast as the baseline.');
}
