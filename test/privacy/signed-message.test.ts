import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import nacl from 'tweetnacl';
import { signMessage, verifyMessage } from '../../privacy/signed-message.js';

const keys = nacl.sign.keyPair();
const te = (s: string) => new TextEncoder().encode(s);

describe('signMessage / verifyMessage', () => {
  it('verifies its own signatures, and the bytes signed are as documented (checked with nacl directly)', () => {
    const parts = [te('plan'), new Uint8Array([1, 2, 3])];
    const sig = signMessage('offer', parts, keys.secretKey);
    expect(verifyMessage('offer', parts, sig, keys.publicKey)).toBe(true);
    const len = (n: number) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(BigInt(n));
      return b;
    };
    const digest = createHash('sha256').update(len(4)).update(parts[0]!).update(len(3)).update(parts[1]!).digest();
    const expected = Buffer.concat([Buffer.from('fedlora-offer-v1\n'), digest]);
    expect(nacl.sign.detached.verify(expected, sig, keys.publicKey)).toBe(true);
  });

  it('refuses another domain, a moved part boundary, a changed byte, or another key', () => {
    const sig = signMessage('offer', [te('ab'), te('c')], keys.secretKey);
    expect(verifyMessage('welcome', [te('ab'), te('c')], sig, keys.publicKey)).toBe(false);
    expect(verifyMessage('offer', [te('a'), te('bc')], sig, keys.publicKey)).toBe(false);
    expect(verifyMessage('offer', [te('abc')], sig, keys.publicKey)).toBe(false);
    expect(verifyMessage('offer', [te('ab'), te('d')], sig, keys.publicKey)).toBe(false);
    expect(verifyMessage('offer', [te('ab'), te('c')], sig, nacl.sign.keyPair().publicKey)).toBe(false);
    expect(verifyMessage('offer', [te('ab'), te('c')], sig.subarray(1), keys.publicKey)).toBe(false);
  });

  it('refuses the domains of other signed formats, so it cannot forge their signatures', () => {
    for (const domain of ['update-envelope', 'auth', 'key-fingerprint']) {
      expect(() => signMessage(domain, [te('x')], keys.secretKey)).toThrow(/FL_ERR_INVALID_ARGUMENT: domain '.*' is reserved/);
    }
  });

  it('refuses a malformed domain or secret key with FL_ERR_INVALID_ARGUMENT', () => {
    expect(() => signMessage('Offer!', [], keys.secretKey)).toThrow(/FL_ERR_INVALID_ARGUMENT: domain must be 1-64 characters/);
    expect(() => signMessage('offer', [], keys.publicKey)).toThrow(/secretKey must be 64 bytes/);
  });
});
