/**
 * The browser client's stand-ins for node:crypto (client/platform/browser/crypto.ts, what the page's
 * bundle maps `node:crypto` to) give node:crypto's bytes: SHA-256/512 over chained updates,
 * AES-256-CTR across chunks and a carrying counter, OpenSSL's ChaCha20 (counter + nonce IV) from
 * any block, and Ed25519 signatures of JWK keys. The module is plain JavaScript on @noble and
 * tweetnacl, so the same code runs here as in the page.
 */
import * as nodeCrypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import * as web from '../../client/platform/browser/crypto.js';

const bytes = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 131 + seed * 17 + ((i * i) >> 3)) & 0xff);

describe('browser crypto = node:crypto, byte for byte', () => {
  it('SHA-256 and SHA-512 over chained updates of bytes and strings, hex and raw', () => {
    for (const alg of ['sha256', 'sha512'] as const) {
      const parts: Array<Uint8Array | string> = [bytes(0, 1), bytes(63, 2), 'fedlora ✓', bytes(1000, 3)];
      const ours = web.createHash(alg);
      const ref = nodeCrypto.createHash(alg);
      for (const p of parts) {
        ours.update(p);
        ref.update(p);
      }
      expect(ours.digest('hex')).toBe(ref.digest('hex'));
      expect(Buffer.from(web.createHash(alg).update(bytes(77, 4)).digest())).toEqual(nodeCrypto.createHash(alg).update(bytes(77, 4)).digest());
    }
  });

  it('AES-256-CTR across whole-block chunks, with a counter that carries over 64 bits', () => {
    const key = bytes(32, 5);
    for (const iv of [bytes(16, 6), Uint8Array.from([...new Array(8).fill(0), ...new Array(8).fill(0xff)])]) {
      const ours = web.createCipheriv('aes-256-ctr', key, iv);
      const ref = nodeCrypto.createCipheriv('aes-256-ctr', key, iv);
      for (const n of [64, 16, 4096, 37]) {
        const data = bytes(n, n);
        expect(Buffer.from(ours.update(data))).toEqual(ref.update(data));
      }
    }
  });

  it("ChaCha20 with OpenSSL's IV (little-endian block counter, 96-bit nonce) from several counters", () => {
    const key = bytes(32, 7);
    for (const counter of [0, 1, 1000, 0xffffff00]) {
      const iv = new Uint8Array(16);
      new DataView(iv.buffer).setUint32(0, counter, true);
      iv.set(bytes(12, 8), 4);
      const ours = web.createCipheriv('chacha20', key, iv);
      const ref = nodeCrypto.createCipheriv('chacha20', key, iv);
      for (const n of [128, 64, 1000]) {
        const data = new Uint8Array(n);
        expect(Buffer.from(ours.update(data))).toEqual(ref.update(data));
      }
    }
    // Past 2^32 blocks OpenSSL carries into the nonce; @noble refuses. No stream of ours gets there
    // (they start at block 0), so the browser says so rather than giving other bytes.
    const last = new Uint8Array(16);
    new DataView(last.buffer).setUint32(0, 0xffffffff, true);
    expect(() => web.createCipheriv('chacha20', key, last).update(new Uint8Array(128))).toThrow(/counter overflow/);
  });

  it('Ed25519: the same signature from the same JWK key, verified both ways; a changed message fails', () => {
    const { privateKey, publicKey } = nodeCrypto.generateKeyPairSync('ed25519');
    const jwkPrivate = privateKey.export({ format: 'jwk' }) as { kty: string; crv: string; x: string; d: string };
    const jwkPublic = publicKey.export({ format: 'jwk' }) as { kty: string; crv: string; x: string };
    const message = bytes(300, 9);
    const ours = web.sign(null, message, web.createPrivateKey({ key: jwkPrivate, format: 'jwk' }));
    expect(ours).toEqual(nodeCrypto.sign(null, message, privateKey));
    expect(nodeCrypto.verify(null, message, publicKey, ours)).toBe(true);
    const pub = web.createPublicKey({ key: jwkPublic, format: 'jwk' });
    expect(web.verify(null, message, pub, nodeCrypto.sign(null, message, privateKey))).toBe(true);
    const changed = message.slice();
    changed[0] ^= 1;
    expect(web.verify(null, changed, pub, ours)).toBe(false);
  });

  it('refuses what the browser client cannot do, naming it', () => {
    expect(() => web.createHash('md5')).toThrow(/createHash\('md5'\) is not available in the browser client/);
    expect(() => web.diffieHellman()).toThrow(/diffieHellman \(secure aggregation\)/);
  });
});
