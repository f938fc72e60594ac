import { describe, expect, it } from 'vitest';
import nacl from 'tweetnacl';
import { signEd25519, verifyEd25519 } from '../../privacy/ed25519.js';

describe('Ed25519 through node:crypto in tweetnacl key formats', () => {
  it('signs byte-for-byte like nacl.sign.detached, and each verifies the other', () => {
    for (let i = 0; i < 5; i++) {
      const keys = nacl.sign.keyPair();
      const message = nacl.randomBytes(i * 37);
      const ours = signEd25519(message, keys.secretKey);
      expect(ours).toEqual(nacl.sign.detached(message, keys.secretKey));
      expect(nacl.sign.detached.verify(message, ours, keys.publicKey)).toBe(true);
      expect(verifyEd25519(message, nacl.sign.detached(message, keys.secretKey), keys.publicKey)).toBe(true);
    }
  });

  it('refuses a changed message, signature or key, and malformed inputs, without throwing', () => {
    const keys = nacl.sign.keyPair();
    const message = new TextEncoder().encode('round 3');
    const sig = signEd25519(message, keys.secretKey);
    expect(verifyEd25519(new TextEncoder().encode('round 4'), sig, keys.publicKey)).toBe(false);
    const badSig = sig.slice();
    badSig[10]! ^= 1;
    expect(verifyEd25519(message, badSig, keys.publicKey)).toBe(false);
    expect(verifyEd25519(message, sig, nacl.sign.keyPair().publicKey)).toBe(false);
    expect(verifyEd25519(message, sig.subarray(0, 63), keys.publicKey)).toBe(false);
    expect(verifyEd25519(message, sig, new Uint8Array(31))).toBe(false);
    expect(verifyEd25519(message, sig, new Uint8Array(32).fill(0xff))).toBe(false);
  });
});
