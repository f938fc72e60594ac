/**
 * The prime field of fedlora's Shamir secret sharing: GF(p) with p = 2^256 + 297, the smallest
 * prime above 2^256 (checked by Miller-Rabin in test/privacy/secagg/field.test.ts). Every 32-byte
 * secret (a mask seed, an X25519 secret key) is one field element, so a share is one element too
 * (33 bytes on the wire) and no secret needs splitting into chunks. BigInt arithmetic: written here
 * because no installed library does modular BigInt arithmetic, and it is a dozen lines.
 */
import { FedloraError } from '../../shared/errors.js';

/** p = 2^256 + 297. */
export const FIELD_PRIME = (1n << 256n) + 297n;
/** Bytes of a field element on the wire (p > 2^256, so 33). */
export const FIELD_BYTES = 33;

export function mod(a: bigint): bigint {
  const r = a % FIELD_PRIME;
  return r < 0n ? r + FIELD_PRIME : r;
}

/** a^-1 mod p by the extended Euclidean algorithm; a must not be 0 mod p. */
export function inverse(a: bigint): bigint {
  let [oldR, r] = [mod(a), FIELD_PRIME];
  let [oldS, s] = [1n, 0n];
  if (oldR === 0n) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', 'field inverse of 0');
  while (r !== 0n) {
    const q = oldR / r;
    [oldR, r] = [r, oldR - q * r];
    [oldS, s] = [s, oldS - q * s];
  }
  return mod(oldS);
}

/** Big-endian bytes -> integer (any length). */
export function bytesToBigInt(bytes: Uint8Array): bigint {
  let x = 0n;
  for (const b of bytes) x = (x << 8n) | BigInt(b);
  return x;
}

/** Integer in [0, 2^(8 length)) -> big-endian bytes of `length`. */
export function bigIntToBytes(x: bigint, length: number): Uint8Array {
  if (x < 0n || x >> BigInt(8 * length) !== 0n) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `integer does not fit in ${length} bytes`);
  const out = new Uint8Array(length);
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}
