import { afterEach, describe, expect, it, vi } from 'vitest';
import nacl from 'tweetnacl';

// Both implementations behind privacy/box.ts must write and read the same bytes as tweetnacl's
// nacl.box, so an envelope sealed by either opens with the other.
async function loadBox(implementation: 'default' | 'tweetnacl') {
  vi.resetModules();
  if (implementation === 'tweetnacl') vi.stubEnv('FEDLORA_CRYPTO', 'tweetnacl');
  return import('../../privacy/box.js');
}

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('crypto_box through libsodium or tweetnacl', () => {
  it('uses libsodium on this platform (sodium-native ships linux-x64 binaries)', async () => {
    expect((await loadBox('default')).boxImplementation).toBe('libsodium');
    expect((await loadBox('tweetnacl')).boxImplementation).toBe('tweetnacl');
  });

  it.each(['default', 'tweetnacl'] as const)('%s: seals what nacl.box seals and opens what it seals', async (implementation) => {
    const box = await loadBox(implementation);
    const alice = nacl.box.keyPair();
    const bob = nacl.box.keyPair();
    const nonce = nacl.randomBytes(24);
    for (const size of [0, 1, 1000, 70_000]) {
      const message = nacl.randomBytes(size);
      const plain = new Uint8Array(box.ZERO_BYTES + size);
      plain.set(message, box.ZERO_BYTES);
      const boxed = new Uint8Array(plain.length).fill(0xaa);
      expect(box.cryptoBox(boxed, plain, nonce, bob.publicKey, alice.secretKey)).toBe(true);
      const reference = nacl.box(message, nonce, bob.publicKey, alice.secretKey);
      expect(Buffer.from(boxed.subarray(box.BOX_ZERO_BYTES)).equals(Buffer.from(reference))).toBe(true);

      const opened = new Uint8Array(boxed.length);
      expect(box.cryptoBoxOpen(opened, boxed, nonce, alice.publicKey, bob.secretKey)).toBe(true);
      expect(Buffer.from(opened.subarray(box.ZERO_BYTES)).equals(Buffer.from(message))).toBe(true);

      boxed[box.BOX_ZERO_BYTES + Math.floor(boxed.length / 2) - 8] ^= 1; // one flipped bit
      expect(box.cryptoBoxOpen(new Uint8Array(boxed.length), boxed, nonce, alice.publicKey, bob.secretKey)).toBe(false);
    }
  });
});
