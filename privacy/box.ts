/**
 * NaCl's crypto_box (X25519 + XSalsa20-Poly1305) for the update envelope, through libsodium
 * (sodium-native, prebuilt binaries in its npm package) when it loads, else tweetnacl's pure-JS
 * implementation. Both write the same bytes (libsodium's crypto_box_easy is NaCl's crypto_box
 * without the leading zero bytes), so the wire format does not depend on which one ran.
 * Measured on the dev machine: libsodium ~750 MB/s, tweetnacl ~60 MB/s for a 33 MB box.
 */
import { createRequire } from 'node:module';
import nacl from 'tweetnacl';

interface Sodium {
  crypto_box_easy(c: Uint8Array, m: Uint8Array, n: Uint8Array, pk: Uint8Array, sk: Uint8Array): void;
  crypto_box_open_easy(m: Uint8Array, c: Uint8Array, n: Uint8Array, pk: Uint8Array, sk: Uint8Array): boolean;
}

const tweetnaclLowlevel = (nacl as unknown as {
  lowlevel: {
    crypto_box(c: Uint8Array, m: Uint8Array, d: number, n: Uint8Array, pk: Uint8Array, sk: Uint8Array): number;
    crypto_box_open(m: Uint8Array, c: Uint8Array, d: number, n: Uint8Array, pk: Uint8Array, sk: Uint8Array): number;
  };
}).lowlevel;

function loadSodium(): Sodium | undefined {
  if (process.env.FEDLORA_CRYPTO === 'tweetnacl') return undefined;
  try {
    return createRequire(import.meta.url)('sodium-native') as Sodium;
  } catch {
    return undefined;
  }
}

const sodium = loadSodium();

/** Which implementation seals and opens boxes in this process. */
export const boxImplementation: 'libsodium' | 'tweetnacl' = sodium ? 'libsodium' : 'tweetnacl';

/** NaCl API sizes: 32 zero bytes before a plaintext, 16 before a ciphertext. */
export const ZERO_BYTES = 32;
export const BOX_ZERO_BYTES = 16;

/**
 * NaCl's crypto_box: `plain` starts with 32 zero bytes; `boxed` (same length) receives 16 scratch
 * bytes, then the Poly1305 tag and the ciphertext.
 * @returns false when a key is refused
 */
export function cryptoBox(boxed: Uint8Array, plain: Uint8Array, nonce: Uint8Array, publicKey: Uint8Array, secretKey: Uint8Array): boolean {
  if (sodium) {
    sodium.crypto_box_easy(boxed.subarray(BOX_ZERO_BYTES), plain.subarray(ZERO_BYTES), nonce, publicKey, secretKey);
    boxed.fill(0, 0, BOX_ZERO_BYTES);
    return true;
  }
  return tweetnaclLowlevel.crypto_box(boxed, plain, plain.length, nonce, publicKey, secretKey) === 0;
}

/**
 * NaCl's crypto_box_open: `boxed` is 16 scratch bytes, then tag and ciphertext; `plain` (same
 * length) receives 32 zero bytes and the plaintext.
 * @returns false when the box does not authenticate under these keys
 */
export function cryptoBoxOpen(plain: Uint8Array, boxed: Uint8Array, nonce: Uint8Array, publicKey: Uint8Array, secretKey: Uint8Array): boolean {
  if (boxed.length < ZERO_BYTES) return false;
  if (sodium) {
    plain.fill(0, 0, ZERO_BYTES);
    return sodium.crypto_box_open_easy(plain.subarray(ZERO_BYTES), boxed.subarray(BOX_ZERO_BYTES), nonce, publicKey, secretKey);
  }
  return tweetnaclLowlevel.crypto_box_open(plain, boxed, boxed.length, nonce, publicKey, secretKey) === 0;
}
