/**
 * Gaussian noise for the Gaussian mechanism (Dwork & Roth 2014, Sec. 3.5.3; Abadi et al. 2016).
 *
 * Method: Marsaglia's polar method (Marsaglia & Bray 1964) on 53-bit uniforms from a
 * {@link RandomSource} (node:crypto's CSPRNG by default). It is exact up to floating point, needs
 * no tables, and accepts pi/4 of the candidate pairs. Written here rather than taken from a
 * library because the npm Gaussian samplers draw from Math.random, which is not a secure source.
 * test/privacy/gaussian.test.ts checks mean, variance, tails and the whole CDF (Kolmogorov-Smirnov).
 *
 * Limit: like every floating-point Gaussian sampler this one is subject to Mironov's (2012)
 * least-significant-bits attack in principle; docs/privacy.md says what that means here.
 */
import { requireCount, requireNonNegative } from './argument-checks.js';
import { cryptoRandomSource, uniform53, type RandomSource } from './random.js';

/**
 * Adds independent N(0, std^2) noise to every element of `target`, in place. The caller owns
 * `target`; a Float32Array target rounds each noisy value to float32.
 * @param std standard deviation, finite and >= 0 (0 leaves the target unchanged)
 * @param source uniform bits; @default the node:crypto CSPRNG ({@link cryptoRandomSource})
 */
export function addGaussianNoise(target: Float32Array | Float64Array, std: number, source: RandomSource = cryptoRandomSource()): void {
  requireNonNegative(std, 'std');
  if (std === 0) return;
  const n = target.length;
  let i = 0;
  while (i < n) {
    let u: number;
    let v: number;
    let s: number;
    do {
      u = 2 * uniform53(source) - 1;
      v = 2 * uniform53(source) - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    // Both u * f and v * f are standard normal and independent of each other.
    const f = std * Math.sqrt((-2 * Math.log(s)) / s);
    target[i] = target[i]! + u * f;
    i += 1;
    if (i < n) {
      target[i] = target[i]! + v * f;
      i += 1;
    }
  }
}

/**
 * A new vector of `length` independent N(0, std^2) samples, in float64.
 * @param length number of samples, an integer >= 0
 * @param std standard deviation, finite and >= 0
 * @param source uniform bits; @default the node:crypto CSPRNG
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
 * @param source uniform bits; @default the node:crypto CSPRNG
 */
export function gaussianSample(std: number, source: RandomSource = cryptoRandomSource()): number {
  return gaussianVector(1, std, source)[0]!;
}
