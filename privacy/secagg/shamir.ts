/**
 * Shamir secret sharing (Shamir 1979) of 32-byte secrets over GF(2^256 + 297) (field.ts), as
 * Bonawitz et al. 2017 use it for the mask seeds and the mask-agreement secret keys.
 *
 * split: f(x) = s + a_1 x + ... + a_{t-1} x^{t-1} with a_i uniform from the CSPRNG; share i is
 * (x_i, f(x_i)) for distinct non-zero x_i. Any t shares give s = sum_i y_i L_i(0) with the Lagrange
 * basis L_i(0) = prod_{j != i} x_j / (x_j - x_i); fewer than t shares are independent of s.
 */
import { randomBytes } from 'node:crypto';
import { FedloraError } from '../../shared/errors.js';
import { bigIntToBytes, bytesToBigInt, FIELD_PRIME, inverse, mod } from './field.js';

export interface Share {
  /** The evaluation point, an integer >= 1 (the holder's index + 1). */
  readonly x: number;
  /** f(x), in [0, p). */
  readonly y: bigint;
}

/** A uniform field element: 40 random bytes reduced mod p (bias < 2^-60). */
function randomElement(): bigint {
  return bytesToBigInt(randomBytes(40)) % FIELD_PRIME;
}

/**
 * Splits a 32-byte secret into one share per point.
 * @param secret 32 bytes
 * @param xs distinct integers >= 1, one per holder
 * @param threshold t, 1 <= t <= xs.length: any t shares reconstruct, t - 1 reveal nothing
 */
export function splitSecret(secret: Uint8Array, xs: readonly number[], threshold: number): Share[] {
  if (secret.length !== 32) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `shamir: a secret has 32 bytes, got ${secret.length}`);
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > xs.length) {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `shamir: threshold must be an integer in [1, ${xs.length}] (the number of shares), got ${threshold}`);
  }
  checkPoints(xs);
  const coefficients = [bytesToBigInt(secret)];
  for (let i = 1; i < threshold; i++) coefficients.push(randomElement());
  return xs.map((x) => {
    const bx = BigInt(x);
    let y = 0n;
    for (let i = coefficients.length - 1; i >= 0; i--) y = mod(y * bx + coefficients[i]!); // Horner
    return { x, y };
  });
}

function checkPoints(xs: readonly number[]): void {
  const seen = new Set<number>();
  for (const x of xs) {
    if (!Number.isSafeInteger(x) || x < 1) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `shamir: share points must be integers >= 1, got ${x}`);
    if (seen.has(x)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `shamir: share point ${x} appears twice`);
    seen.add(x);
  }
}

/**
 * The value at 0 of the polynomial of degree < shares.length through the shares (Lagrange).
 * With at least t shares of one split this is the secret; the caller checks it against a
 * commitment, since wrong shares give a wrong value, not an error.
 * @returns the secret as 32 bytes, or null when the interpolated value is not a 32-byte secret
 *   (>= 2^256: a sure sign of a wrong share)
 */
export function reconstructSecret(shares: readonly Share[]): Uint8Array | null {
  if (shares.length === 0) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', 'shamir: no shares to reconstruct from');
  checkPoints(shares.map((s) => s.x));
  // L_i(0) = num_i / den_i; one field inversion for all the den_i (prefix and suffix products).
  const k = shares.length;
  const xs = shares.map((s) => BigInt(s.x));
  const num: bigint[] = [];
  const den: bigint[] = [];
  for (let i = 0; i < k; i++) {
    let n = 1n;
    let d = 1n;
    for (let j = 0; j < k; j++) {
      if (j === i) continue;
      n = mod(n * xs[j]!);
      d = mod(d * (xs[j]! - xs[i]!));
    }
    num.push(n);
    den.push(d);
  }
  const prefix = [1n];
  for (let i = 0; i < k; i++) prefix.push(mod(prefix[i]! * den[i]!));
  let suffix = 1n;
  const allInverse = inverse(prefix[k]!);
  let secret = 0n;
  for (let i = k - 1; i >= 0; i--) {
    const denInverse = mod(allInverse * prefix[i]! * suffix); // 1 / den_i = (prod_{j != i} den_j) / prod_j den_j
    suffix = mod(suffix * den[i]!);
    secret = mod(secret + shares[i]!.y * num[i]! * denInverse);
  }
  return secret >> 256n === 0n ? bigIntToBytes(secret, 32) : null;
}
