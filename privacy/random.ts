/**
 * Sources of uniform random bits for the privacy mechanisms.
 *
 * Real noise always comes from {@link cryptoRandomSource} (a ChaCha20 stream keyed from the OS
 * CSPRNG). DP noise drawn
 * from a predictable generator (Math.random, a seeded PRNG) can be subtracted by anyone who can
 * reconstruct the generator's state, which voids the guarantee. {@link seededTestSource} exists
 * so tests are reproducible; nothing outside test/ and bench/ may use it.
 */
import { createCipheriv, createHash, randomFillSync } from 'node:crypto';
import { createRequire } from 'node:module';

/** A stream of independent, uniformly distributed 32-bit words. */
export interface RandomSource {
  /** The next uniform integer in [0, 2^32). */
  nextUint32(): number;
  /**
   * Optional bulk form: fills `out` with independent uniform words (the samplers' fast path, one
   * call per chunk instead of one per word). Sources without it are read word by word.
   */
  fillUint32?(out: Uint32Array): void;
}

/** Fills `out` from `source`: in bulk where it can, else word by word. */
export function fillWords(source: RandomSource, out: Uint32Array): void {
  if (source.fillUint32 !== undefined) {
    source.fillUint32(out);
    return;
  }
  for (let i = 0; i < out.length; i++) out[i] = source.nextUint32();
}

/** Words fetched from the kernel per refill: 64 KiB, so the syscall cost is amortised. */
const BATCH_WORDS = 16_384;

/**
 * A RandomSource over node:crypto's CSPRNG, refilled in large batches with `randomFillSync`
 * (one call per 64 KiB instead of one per number).
 */
export class CryptoRandomSource implements RandomSource {
  private readonly words = new Uint32Array(BATCH_WORDS);
  private next = BATCH_WORDS;

  nextUint32(): number {
    if (this.next === BATCH_WORDS) {
      randomFillSync(this.words);
      this.next = 0;
    }
    return this.words[this.next++]!;
  }

  fillUint32(out: Uint32Array): void {
    randomFillSync(out);
  }
}

interface SodiumStream {
  randombytes_buf(out: Uint8Array): void;
  crypto_stream_chacha20(out: Uint8Array, nonce: Uint8Array, key: Uint8Array): void;
}

function loadSodium(): SodiumStream | undefined {
  try {
    return createRequire(import.meta.url)('sodium-native') as SodiumStream;
  } catch {
    return undefined;
  }
}

const sodium = loadSodium();

/**
 * A ChaCha20 keystream (Bernstein 2008) under a 256-bit key drawn from the operating system's
 * CSPRNG (libsodium's `randombytes_buf`, i.e. getrandom(2); node:crypto where sodium-native does not
 * load): the generator of libsodium's own `randombytes_buf_deterministic` and of Linux's
 * /dev/urandom, run at memory speed (~1.6 GB/s on the dev machine) by libsodium's vectorised code
 * (node:crypto's OpenSSL ChaCha20 as the fallback). Each bulk fill uses a fresh 64-bit nonce (a
 * counter), so no (key, nonce) pair is ever reused; the key never leaves the object.
 */
export class ChaCha20RandomSource implements RandomSource {
  private readonly key = new Uint8Array(32);
  private readonly nonce = new Uint8Array(8);
  private readonly nonceView = new DataView(this.nonce.buffer);
  private counter = 0;
  private readonly words = new Uint32Array(BATCH_WORDS);
  private next = BATCH_WORDS;

  constructor() {
    if (sodium !== undefined) sodium.randombytes_buf(this.key);
    else randomFillSync(this.key);
  }

  nextUint32(): number {
    if (this.next === BATCH_WORDS) {
      this.fillUint32(this.words);
      this.next = 0;
    }
    return this.words[this.next++]!;
  }

  fillUint32(out: Uint32Array): void {
    if (out.length === 0) return;
    // the nonce is a 64-bit little-endian counter, one value per call (2^53 calls before reuse)
    this.nonceView.setUint32(0, this.counter % 4_294_967_296, true);
    this.nonceView.setUint32(4, Math.floor(this.counter / 4_294_967_296), true);
    this.counter++;
    const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    if (sodium !== undefined) {
      sodium.crypto_stream_chacha20(bytes, this.nonce, this.key);
      return;
    }
    // OpenSSL's chacha20 takes a 16-byte IV: a 32-bit block counter (0) then the 96-bit nonce
    const iv = Buffer.alloc(16);
    iv.set(this.nonce, 4);
    const cipher = createCipheriv('chacha20', this.key, iv);
    const zeros = Buffer.alloc(Math.min(bytes.length, 1 << 20));
    for (let at = 0; at < bytes.length; at += zeros.length) {
      const part = cipher.update(at + zeros.length <= bytes.length ? zeros : zeros.subarray(0, bytes.length - at));
      bytes.set(part, at);
    }
  }
}

/** Which implementation runs the ChaCha20 stream in this process. */
export const chachaImplementation: 'libsodium' | 'node:crypto' = sodium ? 'libsodium' : 'node:crypto';

let shared: ChaCha20RandomSource | undefined;

/**
 * The process-wide cryptographically secure source, the default of every mechanism: a
 * {@link ChaCha20RandomSource} keyed from the OS CSPRNG when the process starts using it.
 */
export function cryptoRandomSource(): RandomSource {
  shared ??= new ChaCha20RandomSource();
  return shared;
}

/**
 * A uniform double in [0, 1) with 53 random bits (two words: 27 high bits + 26 low bits), so every
 * representable multiple of 2^-53 is equally likely. 32-bit uniforms would cap Gaussian tails near
 * 6.6 sigma and bias them well before that.
 */
export function uniform53(source: RandomSource): number {
  const high = source.nextUint32() >>> 5; // 27 bits
  const low = source.nextUint32() >>> 6; // 26 bits
  return (high * 67_108_864 + low) / 9_007_199_254_740_992; // (high * 2^26 + low) / 2^53
}

/**
 * FOR TESTS AND BENCHMARKS ONLY: a deterministic source, reproducible from `seed`.
 * Never use it for real noise: anyone who knows (or guesses) the seed can regenerate and remove
 * the noise. It is AES-256-CTR over zeros keyed by SHA-256(seed), so its statistical quality is
 * that of a block cipher (no weak low bits as in LCGs), which statistical tests need.
 * @param seed any integer or string; equal seeds give equal streams
 */
export function seededTestSource(seed: number | string): RandomSource {
  const key = createHash('sha256').update(`fedlora-test-source:${String(seed)}`).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(BATCH_WORDS * 4);
  const words = new Uint32Array(BATCH_WORDS);
  const wordBytes = new Uint8Array(words.buffer);
  let next = BATCH_WORDS;
  return {
    nextUint32(): number {
      if (next === BATCH_WORDS) {
        wordBytes.set(cipher.update(zeros)); // copy: a Buffer's offset need not be 4-aligned
        next = 0;
      }
      return words[next++]!;
    },
    fillUint32(out: Uint32Array): void {
      // the same stream as word-by-word reads: first what is left of the current block
      let at = 0;
      while (at < out.length) {
        if (next === BATCH_WORDS) {
          wordBytes.set(cipher.update(zeros));
          next = 0;
        }
        const take = Math.min(BATCH_WORDS - next, out.length - at);
        out.set(words.subarray(next, next + take), at);
        next += take;
        at += take;
      }
    },
  };
}
