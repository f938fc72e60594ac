/**
 * Gaussian noise for the Gaussian mechanism (Dwork & Roth 2014, Sec. 3.5.3; Abadi et al. 2016).
 *
 * Method: the Ziggurat of Marsaglia & Tsang (2000, "The Ziggurat Method for Generating Random
 * Variables", J. Stat. Softw. 5(8)) with 256 layers, in the form of Doornik (2005, "An Improved
 * Ziggurat Method to Generate Normal Random Samples": a 55-bit uniform per sample independent of
 * the 8 layer bits, so the layer and the position in it are not correlated). It is exact: ~98.8 %
 * of samples are a multiply and a compare, the rest go through the exact wedge test or Marsaglia's
 * (1964) tail algorithm beyond r = 3.654, so no tail is cut off. Uniform words come in bulk
 * ({@link RandomSource.fillUint32}) from the default {@link cryptoRandomSource}, a ChaCha20 stream
 * keyed from the OS CSPRNG, so noise runs at memory speed (`npm run bench noise`). Written here
 * because the npm Gaussian samplers draw from Math.random, which is not a secure source.
 * test/privacy/gaussian.test.ts checks mean, variance, tails and the whole CDF (Kolmogorov-Smirnov,
 * also computed independently by scipy).
 *
 * Limit: like every floating-point Gaussian sampler this one is subject to Mironov's (2012)
 * least-significant-bits attack in principle; docs/privacy.md says what that means here.
 */
import { requireCount, requireNonNegative } from './argument-checks.js';
import { cryptoRandomSource, fillWords, uniform53, type RandomSource } from './random.js';

/** Layers of the ziggurat. */
const LAYERS = 256;
/** r: the right edge of the base layer (Marsaglia & Tsang 2000, 256 layers). */
const R = 3.6541528853610088;
/** v: the area of each layer under f(x) = exp(-x^2 / 2). */
const V = 0.00492867323399;

const f = (x: number): number => Math.exp(-0.5 * x * x);

/**
 * X[i]: the right edge of layer i (X[0] = v / f(r), the base layer's width with its tail folded
 * in; X[1] = r; decreasing to X[256] = 0). FX[i] = f(X[i]).
 */
const X = new Float64Array(LAYERS + 1);
const FX = new Float64Array(LAYERS + 1);
X[0] = V / f(R);
X[1] = R;
for (let i = 2; i < LAYERS; i++) X[i] = Math.sqrt(-2 * Math.log(V / X[i - 1]! + f(X[i - 1]!)));
X[LAYERS] = 0;
for (let i = 0; i <= LAYERS; i++) FX[i] = f(X[i]!);

/** The ziggurat's tables, for tests: X (layer edges) and how well the top layer closes. */
export const zigguratTables = { X, V, R, closure: V / X[LAYERS - 1]! + f(X[LAYERS - 1]!) };

/** Samples per chunk (2 uniform words each): 128 KiB of words and 128 KiB of samples, cache-resident. */
const CHUNK = 16_384;
/** SCALE[i] = X[i] 2^-55 (a signed 56-bit integer to a position in layer i); EDGE[i] = X[i+1]. */
const SCALE = new Float64Array(LAYERS);
const EDGE = new Float64Array(LAYERS);
for (let i = 0; i < LAYERS; i++) {
  SCALE[i] = X[i]! * 2 ** -55;
  EDGE[i] = X[i + 1]!;
}

/**
 * A sample the fast path did not accept: layer `layer` with candidate |x| = `x`. Wedge test
 * (accept x with probability (f(x) - f(X[i+1])) / (f(X[i]) - f(X[i+1]))) or, on the base layer, the
 * tail; on rejection a whole new (layer, x) is drawn from `source`, as the method requires.
 * @returns |sample|; the caller keeps the sign it drew
 */
function slowPath(layer: number, x: number, source: RandomSource): number {
  let i = layer;
  let candidate = x;
  for (;;) {
    if (i === 0) {
      // Marsaglia (1964): a = -ln(u1) / r, b = -ln(u2), accept when 2b > a^2; the sample is r + a
      for (;;) {
        const a = -Math.log(1 - uniform53(source)) / R;
        const b = -Math.log(1 - uniform53(source));
        if (2 * b > a * a) return R + a;
      }
    }
    if (FX[i + 1]! + uniform53(source) * (FX[i]! - FX[i + 1]!) < f(candidate)) return candidate;
    i = source.nextUint32() & 255;
    candidate = uniform53(source) * X[i]!;
    if (candidate < X[i + 1]!) return candidate;
  }
}

/**
 * out[j] = a standard normal sample, from the word pairs (words[2j], words[2j+1]) read as signed
 * 32-bit `iw`: the low 8 bits of the first word pick the layer; its upper 24 bits (signed) and the
 * second word's 32 (unsigned) form a uniform signed 56-bit integer, so u = that / 2^55 is uniform in
 * [-1, 1) and the sign costs no branch. Reading signed words keeps V8 on small integers (a Uint32Array
 * read above 2^31 is a double), about 2x faster; the mapping from words to samples is unchanged.
 */
function standardNormals(out: Float64Array, iw: Int32Array, source: RandomSource): void {
  const n = out.length;
  for (let j = 0, k = 0; j < n; j++, k += 2) {
    const w0 = iw[k]!;
    const i = w0 & 255;
    const x = ((w0 >> 8) * 4_294_967_296 + (iw[k + 1]! >>> 0)) * SCALE[i]!;
    const ax = Math.abs(x);
    if (ax < EDGE[i]!) out[j] = x;
    else {
      const a = slowPath(i, ax, source);
      out[j] = x < 0 ? -a : a;
    }
  }
}

/**
 * Standard normal samples z[0 .. length) in cache-sized blocks: `visit(z, start)` gets samples
 * start .. start + z.length - 1 in a reused buffer (valid only during the call), so a caller can fuse
 * the noise into its own pass over memory (aggregation/dp-fedavg.ts) without an n-sized scratch or a
 * call per sample.
 * @param length number of samples, an integer >= 0
 * @param source uniform bits; @default the ChaCha20 CSPRNG ({@link cryptoRandomSource})
 */
export function standardNormalBlocks(length: number, visit: (z: Float64Array, start: number) => void, source: RandomSource = cryptoRandomSource()): void {
  requireCount(length, 'length');
  const size = Math.min(CHUNK, length);
  const words = new Uint32Array(2 * size);
  const iw = new Int32Array(words.buffer);
  const z = new Float64Array(size);
  for (let start = 0; start < length; start += CHUNK) {
    const len = Math.min(CHUNK, length - start);
    const full = len === size;
    fillWords(source, full ? words : words.subarray(0, 2 * len));
    const zc = full ? z : z.subarray(0, len);
    standardNormals(zc, full ? iw : iw.subarray(0, 2 * len), source);
    visit(zc, start);
  }
}

function addScaled64(target: Float64Array, at: number, z: Float64Array, std: number): void {
  for (let j = 0; j < z.length; j++) target[at + j] += std * z[j]!;
}

function addScaled32(target: Float32Array, at: number, z: Float64Array, std: number): void {
  for (let j = 0; j < z.length; j++) target[at + j] += std * z[j]!;
}

/**
 * Adds independent N(0, std^2) noise to every element of `target`, in place. The caller owns
 * `target`; a Float32Array target rounds each noisy value to float32.
 * @param std standard deviation, finite and >= 0 (0 leaves the target unchanged)
 * @param source uniform bits; @default the ChaCha20 CSPRNG ({@link cryptoRandomSource})
 */
export function addGaussianNoise(target: Float32Array | Float64Array, std: number, source: RandomSource = cryptoRandomSource()): void {
  requireNonNegative(std, 'std');
  if (std === 0) return;
  if (target instanceof Float64Array) standardNormalBlocks(target.length, (z, start) => addScaled64(target, start, z, std), source);
  else standardNormalBlocks(target.length, (z, start) => addScaled32(target, start, z, std), source);
}

/**
 * A new vector of `length` independent N(0, std^2) samples, in float64.
 * @param length number of samples, an integer >= 0
 * @param std standard deviation, finite and >= 0
 * @param source uniform bits; @default the ChaCha20 CSPRNG
 */
export function gaussianVector(length: number, std: number, source: RandomSource = cryptoRandomSource()): Float64Array {
  requireCount(length, 'length');
  const out = new Float64Array(length);
  addGaussianNoise(out, std, source);
  return out;
}

/**
 * One N(0, std^2) sample (for scalar noise such as adaptive clipping's count noise).
 * @param std standard deviation, finite and >= 0
 * @param source uniform bits; @default the ChaCha20 CSPRNG
 */
export function gaussianSample(std: number, source: RandomSource = cryptoRandomSource()): number {
  return gaussianVector(1, std, source)[0]!;
}
