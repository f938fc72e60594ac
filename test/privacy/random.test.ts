import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CryptoRandomSource, cryptoRandomSource, seededTestSource, type RandomSource } from '../../privacy/random.js';

/** Words from a source, across several of its internal refills (16,384 words each). */
function draw(source: RandomSource, n: number): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = source.nextUint32();
  return out;
}

describe.each([
  ['CryptoRandomSource', () => new CryptoRandomSource()],
  ['seededTestSource', () => seededTestSource('bits')],
])('%s', (_name, make) => {
  it('gives 32-bit unsigned integers with every bit position balanced, across refills', () => {
    const n = 50_000; // > 3 refills
    const words = draw(make(), n);
    const ones = new Array<number>(32).fill(0);
    let outOfRange = 0;
    for (const w of words) {
      if (!(Number.isInteger(w) && w >= 0 && w < 2 ** 32)) outOfRange++;
      for (let b = 0; b < 32; b++) ones[b]! += (w >>> b) & 1;
    }
    expect(outOfRange).toBe(0);
    // Hoeffding per bit: P(|count - n/2| > t) <= 2 exp(-2 t^2 / n); t = 0.03 n -> 2 exp(-90): never
    for (const c of ones) expect(Math.abs(c - n / 2)).toBeLessThan(0.03 * n);
  });

  it('does not repeat a refill: consecutive 16,384-word blocks differ', () => {
    const words = draw(make(), 3 * 16_384);
    const block = (k: number) => Buffer.from(words.buffer, k * 65_536, 65_536);
    expect(block(0).equals(block(1))).toBe(false);
    expect(block(1).equals(block(2))).toBe(false);
  });
});

describe('sources', () => {
  it('the shared CSPRNG source is one instance', () => {
    expect(cryptoRandomSource()).toBe(cryptoRandomSource());
  });

  it('seeded test sources are reproducible per seed, and seeds give different streams', () => {
    expect(draw(seededTestSource(42), 20_000)).toEqual(draw(seededTestSource(42), 20_000));
    expect(draw(seededTestSource(42), 8)).not.toEqual(draw(seededTestSource(43), 8));
    expect(draw(seededTestSource('42'), 8)).toEqual(draw(seededTestSource(42), 8)); // the seed is read as text
  });

  it('two CSPRNG sources do not share a stream', () => {
    expect(draw(new CryptoRandomSource(), 8)).not.toEqual(draw(new CryptoRandomSource(), 8));
  });
});

describe('the test source stays in tests', () => {
  it('no source outside test/ and bench/ uses seededTestSource or Math.random for privacy noise', () => {
    const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (/\.(ts|mjs|js)$/.test(entry.name)) {
          const text = readFileSync(path, 'utf8');
          const rel = relative(root, path);
          if (rel !== join('privacy', 'random.ts') && /seededTestSource\s*\(/.test(text)) offenders.push(`${rel}: seededTestSource`);
          if (rel.startsWith('privacy') && /Math\.random\s*\(/.test(text)) offenders.push(`${rel}: Math.random`);
        }
      }
    };
    for (const folder of ['shared', 'privacy', 'aggregation', 'coordinator', 'client', 'simulations', 'bin']) {
      try {
        walk(join(root, folder));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
    expect(offenders).toEqual([]);
  });
});
