import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChaCha20RandomSource, CryptoRandomSource, cryptoRandomSource, fillWords, seededTestSource, type RandomSource } from '../../privacy/random.js';

/** Words from a source, across several of its internal refills (16,384 words each). */
function draw(source: RandomSource, n: number): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = source.nextUint32();
  return out;
}

describe.each([
  ['CryptoRandomSource', () => new CryptoRandomSource()],
  ['ChaCha20RandomSource', () => new ChaCha20RandomSource()],
  ['seededTestSource', () => seededTestSource('bits')],
])('%s', (_name, make) => {
  it('bulk fills are balanced too, and two fills differ (a fresh nonce per fill)', () => {
    const source = make();
    const a = new Uint32Array(40_000);
    const b = new Uint32Array(40_000);
    fillWords(source, a);
    fillWords(source, b);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(false);
    const ones = new Array<number>(32).fill(0);
    for (const w of a) for (let bit = 0; bit < 32; bit++) ones[bit]! += (w >>> bit) & 1;
    // Hoeffding per bit, t = 0.03 n: 2 exp(-72)
    for (const c of ones) expect(Math.abs(c - a.length / 2)).toBeLessThan(0.03 * a.length);
  });

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
    expect(draw(new ChaCha20RandomSource(), 8)).not.toEqual(draw(new ChaCha20RandomSource(), 8)); // a fresh key each
  });

  it('the seeded source gives the same stream in bulk as word by word, across refills', () => {
    const bulk = new Uint32Array(40_000);
    const source = seededTestSource('bulk');
    source.nextUint32(); // start mid-block
    fillWords(source, bulk.subarray(0, 5));
    fillWords(source, bulk.subarray(5));
    const words = draw(seededTestSource('bulk'), 40_001).subarray(1);
    expect(bulk).toEqual(words);
  });

  it('the ChaCha20 stream is crypto_stream_chacha20: the known keystream for key 0, nonce 0', () => {
    // keystream for an all-zero key and nonce (draft-agl-tls-chacha20poly1305, test vector 1)
    const source = new ChaCha20RandomSource();
    (source as unknown as { key: Uint8Array }).key.fill(0);
    const out = new Uint32Array(8);
    source.fillUint32(out);
    expect(Buffer.from(out.buffer).toString('hex')).toBe('76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7');
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
