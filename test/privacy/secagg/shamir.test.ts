import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { bigIntToBytes, bytesToBigInt, FIELD_PRIME, inverse, mod } from '../../../privacy/secagg/field.js';
import { reconstructSecret, splitSecret } from '../../../privacy/secagg/shamir.js';
import { isFedloraError } from '../../../shared/errors.js';

/** Miller-Rabin with fixed bases, written here independently of privacy/secagg/field.ts. */
function millerRabin(n: bigint, bases: readonly bigint[]): boolean {
  const pow = (b: bigint, e: bigint): bigint => {
    let r = 1n;
    b %= n;
    for (; e > 0n; e >>= 1n, b = (b * b) % n) if (e & 1n) r = (r * b) % n;
    return r;
  };
  let d = n - 1n;
  let s = 0;
  while ((d & 1n) === 0n) {
    d >>= 1n;
    s++;
  }
  outer: for (const a of bases) {
    let x = pow(a, d);
    if (x === 1n || x === n - 1n) continue;
    for (let i = 1; i < s; i++) {
      x = (x * x) % n;
      if (x === n - 1n) continue outer;
    }
    return false;
  }
  return true;
}

const BASES = [2n, 3n, 5n, 7n, 11n, 13n, 17n, 19n, 23n, 29n, 31n, 37n, 41n, 43n, 47n, 53n, 59n, 61n, 67n, 71n];

describe('the field GF(2^256 + 297)', () => {
  it('p is prime and no number between 2^256 and p is (it is the smallest prime above 2^256)', () => {
    // 20 Miller-Rabin bases: a composite passes with probability < 4^-20 (a false "prime" is all this could get wrong).
    expect(millerRabin(FIELD_PRIME, BASES)).toBe(true);
    for (let k = 1n; k < 297n; k += 2n) expect(millerRabin((1n << 256n) + k, BASES)).toBe(false);
  });

  it('inverse(a) * a = 1 and bytes round-trip', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: FIELD_PRIME - 1n }), (a) => {
        expect(mod(inverse(a) * a)).toBe(1n);
        expect(bytesToBigInt(bigIntToBytes(a, 33))).toBe(a);
      }),
      { numRuns: 200 },
    );
    expect(() => inverse(FIELD_PRIME)).toThrow(/inverse of 0/);
  });
});

const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 });

describe('Shamir secret sharing', () => {
  it('reconstructs a hand-made polynomial f(x) = s + 5x + 7x^2 from shares at 1, 2, 3', () => {
    const s = 123_456_789n;
    const f = (x: bigint) => (s + 5n * x + 7n * x * x) % FIELD_PRIME;
    const shares = [1, 2, 3].map((x) => ({ x, y: f(BigInt(x)) }));
    expect(shares.map((sh) => sh.y)).toEqual([123_456_801n, 123_456_827n, 123_456_867n]); // s + 12, s + 38, s + 78
    expect(bytesToBigInt(reconstructSecret(shares)!)).toBe(s);
    // Two shares of a degree-2 polynomial give the line through them: 123456801 - (26) = s - 14.
    expect(bytesToBigInt(reconstructSecret(shares.slice(0, 2))!)).toBe(s - 14n);
  });

  it('a secret of 2^256 - 1 (the largest) survives; a share point twice is refused', () => {
    const secret = new Uint8Array(32).fill(255);
    const shares = splitSecret(secret, [3, 9, 27], 2);
    expect(reconstructSecret([shares[2]!, shares[0]!])).toEqual(secret);
    expect(() => reconstructSecret([shares[0]!, shares[0]!])).toThrow(/appears twice/);
    expect(() => splitSecret(secret, [1, 2], 3)).toThrow(/threshold must be an integer in \[1, 2\]/);
    expect(() => splitSecret(secret.subarray(1), [1, 2], 1)).toThrow(/32 bytes/);
  });

  it('any t of the shares reconstruct the secret, in any order', () => {
    fc.assert(
      fc.property(bytes32, fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 8 }), fc.integer(), (secret, t, extra, seed) => {
        const n = t + extra;
        const xs = Array.from({ length: n }, (_, i) => 1 + i * 7);
        const shares = splitSecret(secret, xs, t);
        // A seeded shuffle picks which t shares.
        const order = shares.map((s, i) => ({ s, k: Math.imul(seed ^ (i * 2654435761), 2246822519) >>> 0 })).sort((a, b) => a.k - b.k);
        expect(reconstructSecret(order.slice(0, t).map((o) => o.s))).toEqual(secret);
        expect(reconstructSecret(order.map((o) => o.s))).toEqual(secret); // more than t: the same polynomial
      }),
      { numRuns: 100 },
    );
  });

  it('t - 1 shares do not give the secret, and one altered share changes the result', () => {
    fc.assert(
      fc.property(bytes32, fc.integer({ min: 2, max: 6 }), (secret, t) => {
        const shares = splitSecret(secret, Array.from({ length: t }, (_, i) => i + 1), t);
        // With t - 1 shares the value at 0 is uniform over the field: equal to s with probability 1/p.
        const fewer = reconstructSecret(shares.slice(0, t - 1));
        expect(fewer === null || !Buffer.from(fewer).equals(Buffer.from(secret))).toBe(true);
        const altered = [{ ...shares[0]!, y: mod(shares[0]!.y + 1n) }, ...shares.slice(1)];
        const wrong = reconstructSecret(altered);
        expect(wrong === null || !Buffer.from(wrong).equals(Buffer.from(secret))).toBe(true);
      }),
      { numRuns: 50 },
    );
  });

  it('refuses points that are not integers >= 1 with a coded error', () => {
    const secret = new Uint8Array(32);
    for (const xs of [[0, 1], [1.5, 2], [-1, 2]]) {
      try {
        splitSecret(secret, xs, 1);
        expect.unreachable();
      } catch (e) {
        expect(isFedloraError(e, 'FL_ERR_INVALID_ARGUMENT')).toBe(true);
      }
    }
  });
});
