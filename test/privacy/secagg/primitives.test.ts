import { describe, it, expect } from 'vitest';
import nacl from 'tweetnacl';
import { AgreementKeyPair, deriveKey, publicKeyOf } from '../../../privacy/secagg/key-agreement.js';
import { applyMask, expandMask } from '../../../privacy/secagg/mask-expansion.js';
import { defaultDegree, defaultThreshold, neighbourhood } from '../../../privacy/secagg/neighbourhood.js';
import { dequantiseSum, maxSummands, quantisationErrorBound, quantise, checkQuantisation } from '../../../privacy/secagg/quantize.js';
import { seededTestSource } from '../../../privacy/random.js';
import { isFedloraError } from '../../../shared/errors.js';

describe('X25519 agreement', () => {
  it('agrees the same secret as tweetnacl nacl.scalarMult on both sides', () => {
    for (let i = 0; i < 5; i++) {
      const a = new AgreementKeyPair();
      const b = new AgreementKeyPair();
      expect(a.publicKey).toEqual(nacl.scalarMult.base(a.secretKey));
      const ab = a.agree(b.publicKey, 'b');
      expect(ab).toEqual(nacl.scalarMult(a.secretKey, b.publicKey));
      expect(b.agree(a.publicKey, 'a')).toEqual(ab);
      expect(publicKeyOf(b.secretKey)).toEqual(b.publicKey);
    }
  });

  it('refuses a low-order public key and a short one with FL_ERR_SECAGG_BAD_SHARE', () => {
    const a = new AgreementKeyPair();
    for (const bad of [new Uint8Array(32), Uint8Array.from([1, ...new Uint8Array(31)]), new Uint8Array(31)]) {
      try {
        a.agree(bad, 'mallory');
        expect.unreachable();
      } catch (e) {
        expect(isFedloraError(e, 'FL_ERR_SECAGG_BAD_SHARE')).toBe(true);
        expect((e as Error).message).toMatch(/mallory/);
      }
    }
  });

  it('derived keys differ by purpose and by how the parts split', () => {
    const s = new Uint8Array(32).fill(7);
    expect(deriveKey('a', ['x', s])).not.toEqual(deriveKey('b', ['x', s]));
    expect(deriveKey('a', ['ab', 'c'])).not.toEqual(deriveKey('a', ['a', 'bc']));
  });
});

describe('mask expansion (ChaCha20)', () => {
  it('is RFC 8439 ChaCha20: the all-zero key and nonce give the test vector of RFC 7539 A.1 #1', () => {
    const words = expandMask(new Uint8Array(32), 16);
    expect(Buffer.from(words.buffer).toString('hex')).toBe(
      '76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586',
    );
  });

  it('subtracting the mask undoes adding it, across chunk boundaries', () => {
    const key = new Uint8Array(32).fill(3);
    const v = Uint32Array.from({ length: 40_000 }, (_, i) => (i * 2654435761) >>> 0);
    const copy = v.slice();
    applyMask(v, key, 1);
    expect(v).not.toEqual(copy);
    // The mask's 20 000th word is the stream's, whichever chunk it falls in.
    expect(v[20_000]).toBe((copy[20_000]! + expandMask(key, 20_001)[20_000]!) >>> 0);
    applyMask(v, key, -1);
    expect(v).toEqual(copy);
  });
});

describe('neighbourhood graph', () => {
  it('every client has exactly k neighbours, the graph is symmetric and fixed by the seed', () => {
    const clients = Array.from({ length: 100 }, (_, i) => `c${i}`);
    const k = defaultDegree(100);
    expect(k).toBe(20);
    const g = neighbourhood(clients, k, 'seed-1');
    for (const [u, ns] of g) {
      expect(ns.size).toBe(k);
      expect(ns.has(u)).toBe(false);
      for (const v of ns) expect(g.get(v)!.has(u)).toBe(true);
    }
    expect(neighbourhood(clients, k, 'seed-1')).toEqual(g);
    expect(neighbourhood(clients, k, 'seed-2')).not.toEqual(g);
  });

  it('is the complete graph for k = n - 1, and refuses odd or too large degrees', () => {
    const clients = ['a', 'b', 'c', 'd'];
    for (const ns of neighbourhood(clients, 3, 's').values()) expect(ns.size).toBe(3);
    expect(() => neighbourhood(clients, 1, 's')).toThrow(/degree must be 3/);
    expect(defaultDegree(500)).toBe(28);
    expect(defaultThreshold(28)).toBe(15);
  });
});

describe('quantisation', () => {
  const p = { clipRange: 1, quantRange: 2 ** 10 };

  it('the sum of n quantised vectors dequantises within n 2c / T of the true sum (stochastic rounding)', () => {
    const n = 50;
    const random = seededTestSource('quantise');
    const values = Array.from({ length: n }, (_, k) => Float64Array.from({ length: 1000 }, (_, i) => Math.sin(k * 1000 + i)));
    const sum = new Uint32Array(1000);
    for (const v of values) {
      const q = quantise(v, p, random).quantised;
      for (let i = 0; i < q.length; i++) sum[i] = (sum[i]! + q[i]!) >>> 0;
    }
    const out = dequantiseSum(sum, p, n);
    const bound = quantisationErrorBound(p, n);
    expect(bound).toBeCloseTo((50 * 2) / 1024, 12);
    let maxErr = 0;
    let meanErr = 0;
    for (let i = 0; i < 1000; i++) {
      const exact = values.reduce((s, v) => s + v[i]!, 0);
      maxErr = Math.max(maxErr, Math.abs(out[i]! - exact));
      meanErr += (out[i]! - exact) / 1000;
    }
    expect(maxErr).toBeLessThan(bound);
    // Unbiased: the mean error over 1000 coordinates has std <= sqrt(n / 4 / 1000) Delta ~ 0.11 Delta; 6 std fails w.p. < 1e-8.
    expect(Math.abs(meanErr)).toBeLessThan(6 * Math.sqrt(n / 4 / 1000) * (2 / 1024));
  });

  it('clips to [-c, c] and counts the clipped coordinates; refuses NaN', () => {
    const { quantised, clippedCoordinates } = quantise([5, -5, 0.5], p, seededTestSource('c'));
    expect(clippedCoordinates).toBe(2);
    expect(quantised[0]).toBe(1024);
    expect(quantised[1]).toBe(0);
    expect(() => quantise([Number.NaN], p)).toThrow(/NaN/);
  });

  it('refuses a client count that would overflow 2^32', () => {
    expect(maxSummands(2 ** 22)).toBe(1023);
    expect(() => checkQuantisation({ clipRange: 8, quantRange: 2 ** 22 }, 1024)).toThrow(/at most 1023 clients/);
    checkQuantisation({ clipRange: 8, quantRange: 2 ** 22 }, 1023);
  });
});
