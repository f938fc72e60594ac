/**
 * A seeded stream of random numbers for what must be reproducible from a seed: data splits,
 * shuffles, batch order, initialisations. NOT for privacy noise or DP sampling, which draw from
 * privacy/random.ts's CSPRNG (a seed anyone knows would let them undo the noise).
 *
 * AES-256-CTR over zeros keyed by SHA-256 of the seed (node:crypto): a block cipher's output, so no
 * weak low bits as in small LCGs, and the same stream on every machine and Node version.
 */
import { createCipheriv, createHash } from 'node:crypto';

const WORDS = 4096;

export class SeededRandom {
  private readonly cipher: ReturnType<typeof createCipheriv>;
  private readonly words = new Uint32Array(WORDS);
  private readonly bytes = new Uint8Array(this.words.buffer);
  private readonly zeros = Buffer.alloc(WORDS * 4);
  private next = WORDS;

  /** @param seed any integer or string; equal seeds give equal streams; `label` separates uses of one seed */
  constructor(seed: number | string, label = '') {
    const key = createHash('sha256').update(`fedlora-seeded:${label}:${String(seed)}`).digest();
    this.cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  }

  /** A uniform integer in [0, 2^32). */
  nextUint32(): number {
    if (this.next === WORDS) {
      this.bytes.set(this.cipher.update(this.zeros));
      this.next = 0;
    }
    return this.words[this.next++]!;
  }

  /** A uniform double in [0, 1) with 53 random bits. */
  nextFloat(): number {
    const high = this.nextUint32() >>> 5;
    const low = this.nextUint32() >>> 6;
    return (high * 67_108_864 + low) / 9_007_199_254_740_992;
  }

  /** A uniform integer in [0, n), without modulo bias. */
  nextInt(n: number): number {
    return Math.floor(this.nextFloat() * n);
  }

  /** Shuffles in place (Fisher-Yates) and returns the array. */
  shuffle<T extends { length: number; [i: number]: unknown }>(array: T): T {
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const t = array[i];
      array[i] = array[j];
      array[j] = t;
    }
    return array;
  }
}
