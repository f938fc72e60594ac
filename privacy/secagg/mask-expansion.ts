/**
 * Expands a 32-byte mask key into a vector of uniform 32-bit words with ChaCha20 (RFC 8439,
 * node:crypto / OpenSSL: ~10x tweetnacl's pure-JS XSalsa20 here) and adds it to, or subtracts it
 * from, a vector mod 2^32. Keys are derived per round, pair or client (key-agreement.ts) and used
 * for one stream only, so the all-zero nonce is safe. Words are read little-endian.
 * The stream is generated in 64 KiB chunks so a 17 MB update needs no 17 MB mask buffer.
 */
import { createCipheriv } from 'node:crypto';
import { FedloraError } from '../../shared/errors.js';

const ZERO_IV = Buffer.alloc(16); // ChaCha20 in OpenSSL: 4-byte counter || 12-byte nonce
const CHUNK_WORDS = 16_384;
const ZEROS = Buffer.alloc(CHUNK_WORDS * 4);

/**
 * target <- target + sign * PRG(key) mod 2^32, in place.
 * @param key 32 bytes, used for this one stream only
 * @param sign +1 adds the mask, -1 subtracts it
 */
export function applyMask(target: Uint32Array, key: Uint8Array, sign: 1 | -1): void {
  if (key.length !== 32) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `mask key has 32 bytes, got ${key.length}`);
  const cipher = createCipheriv('chacha20', key, ZERO_IV);
  const words = new Uint32Array(CHUNK_WORDS);
  const bytes = new Uint8Array(words.buffer);
  for (let offset = 0; offset < target.length; offset += CHUNK_WORDS) {
    const n = Math.min(CHUNK_WORDS, target.length - offset);
    bytes.set(cipher.update(ZEROS.subarray(0, n * 4))); // copy: the cipher's buffer may be unaligned
    if (sign === 1) for (let i = 0; i < n; i++) target[offset + i] = (target[offset + i]! + words[i]!) >>> 0;
    else for (let i = 0; i < n; i++) target[offset + i] = (target[offset + i]! - words[i]!) >>> 0;
  }
}

/** PRG(key) as a new vector of `length` words (for tests and small vectors). */
export function expandMask(key: Uint8Array, length: number): Uint32Array {
  const out = new Uint32Array(length);
  applyMask(out, key, 1);
  return out;
}
