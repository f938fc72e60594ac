/**
 * `node:crypto` in the browser client: the subset the client, privacy and shared code the page
 * bundles call, on audited pure-JS libraries (@noble/hashes, @noble/ciphers, tweetnacl) and the
 * browser's CSPRNG. The browser build (client/web/build.ts) aliases `node:crypto` to this file; the
 * Node agent never loads it. Outputs are byte-for-byte node:crypto's (test/client/web-platform.test.ts).
 * Anything else throws, naming the function, rather than computing something different.
 */
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { ctr } from '@noble/ciphers/aes.js';
import { chacha20 } from '@noble/ciphers/chacha.js';
import nacl from 'tweetnacl';
import { Buffer } from 'buffer';

type Data = Uint8Array | string;
const bytesOf = (d: Data): Uint8Array => (typeof d === 'string' ? new TextEncoder().encode(d) : d);

/** createHash('sha256' | 'sha512'): update() chains, digest() gives a Buffer or a hex string. */
export function createHash(algorithm: string) {
  const h = algorithm === 'sha256' ? sha256.create() : algorithm === 'sha512' ? sha512.create() : unsupported(`createHash('${algorithm}')`);
  const hasher = {
    update(data: Data) {
      h.update(bytesOf(data));
      return hasher;
    },
    digest(encoding?: 'hex') {
      const out = Buffer.from(h.digest());
      return encoding === 'hex' ? out.toString('hex') : out;
    },
  };
  return hasher as { update(data: Data): typeof hasher; digest(): Buffer; digest(encoding: 'hex'): string };
}

/** Adds `blocks` to a big-endian 128-bit counter (AES-CTR's IV). */
function addToCounter(iv: Uint8Array, blocks: number): Uint8Array {
  const out = iv.slice();
  let carry = blocks;
  for (let i = 15; i >= 0 && carry > 0; i--) {
    const sum = out[i]! + (carry % 256);
    out[i] = sum & 0xff;
    carry = Math.floor(carry / 256) + (sum >> 8);
  }
  return out;
}

/**
 * createCipheriv for the two keystreams the code draws from: 'aes-256-ctr' (seeded streams) and
 * 'chacha20' (OpenSSL's: a 16-byte IV of a little-endian 32-bit block counter then a 96-bit
 * nonce). update() keeps the position; every chunk but the last must be whole blocks.
 */
export function createCipheriv(algorithm: string, key: Uint8Array, iv: Uint8Array) {
  let offset = 0;
  const block = algorithm === 'aes-256-ctr' ? 16 : algorithm === 'chacha20' ? 64 : unsupported(`createCipheriv('${algorithm}')`);
  return {
    update(data: Uint8Array): Buffer {
      if (offset % block !== 0) unsupported(`cipher.update after a chunk that is not whole ${block}-byte blocks`);
      const blocks = offset / block;
      let out: Uint8Array;
      if (algorithm === 'aes-256-ctr') {
        out = ctr(key, addToCounter(iv, blocks)).encrypt(data);
      } else {
        const counter = new DataView(iv.buffer, iv.byteOffset, 4).getUint32(0, true) + blocks;
        out = chacha20(key, iv.subarray(4, 16), data, undefined, counter);
      }
      offset += data.length;
      return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
    },
  };
}

/** The browser's CSPRNG, in the 64 KiB pieces getRandomValues accepts. */
export function randomFillSync<T extends ArrayBufferView>(buffer: T): T {
  const bytes = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  for (let at = 0; at < bytes.length; at += 65_536) globalThis.crypto.getRandomValues(bytes.subarray(at, Math.min(bytes.length, at + 65_536)));
  return buffer;
}

export function randomBytes(size: number): Buffer {
  return randomFillSync(Buffer.alloc(size));
}

/** An Ed25519 key as node:crypto's JWK import gives it: the 32-byte seed (private keys) and public key. */
interface EdKey {
  readonly seed?: Uint8Array;
  readonly publicKey: Uint8Array;
}
export type KeyObject = EdKey;

interface JwkInput {
  key: { kty: string; crv: string; x: string; d?: string };
  format: 'jwk';
}

function edKey(input: JwkInput): EdKey {
  if (input.format !== 'jwk' || input.key.kty !== 'OKP' || input.key.crv !== 'Ed25519') unsupported('a key that is not an Ed25519 JWK');
  const publicKey = new Uint8Array(Buffer.from(input.key.x, 'base64url'));
  return input.key.d === undefined ? { publicKey } : { seed: new Uint8Array(Buffer.from(input.key.d, 'base64url')), publicKey };
}

export const createPrivateKey = (input: JwkInput): EdKey => edKey(input);
export const createPublicKey = (input: JwkInput): EdKey => edKey(input);

/** Ed25519 (RFC 8032, deterministic): the same signature node:crypto's OpenSSL gives. */
export function sign(_algorithm: null, message: Uint8Array, key: EdKey): Buffer {
  if (key.seed === undefined) unsupported('sign with a public key');
  return Buffer.from(nacl.sign.detached(message, nacl.sign.keyPair.fromSeed(key.seed).secretKey));
}

export function verify(_algorithm: null, message: Uint8Array, key: EdKey, signature: Uint8Array): boolean {
  if (key.publicKey.length !== 32) throw new Error('invalid Ed25519 public key');
  return nacl.sign.detached.verify(message, signature, key.publicKey);
}

export function diffieHellman(): never {
  return unsupported('diffieHellman (secure aggregation)');
}

function unsupported(what: string): never {
  throw new Error(`${what} is not available in the browser client`);
}

export default { createHash, createCipheriv, randomFillSync, randomBytes, createPrivateKey, createPublicKey, sign, verify, diffieHellman };
