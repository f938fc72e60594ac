/**
 * Sources of uniform random bits for the privacy mechanisms.
 *
 * Real noise always comes from {@link cryptoRandomSource} (node:crypto's CSPRNG). DP noise drawn
 * from a predictable generator (Math.random, a seeded PRNG) can be subtracted by anyone who can
 * reconstruct the generator's state, which voids the guarantee. {@link seededTestSource} exists
 * so tests are reproducible; nothing outside test/ and bench/ may use it.
 */
import { createCipheriv, createHash, randomFillSync } from 'node:crypto';

/** A stream of independent, uniformly distributed 32-bit words. */
export interface RandomSource {
  /** The next uniform integer in [0, 2^32). */
  nextUint32(): number;
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
}

let shared: CryptoRandomSource | undefined;

/** The process-wide cryptographically secure source: the default of every mechanism. */
export function cryptoRandomSource(): RandomSource {
  shared ??= new CryptoRandomSource();
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
  };
}
