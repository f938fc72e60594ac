/**
 * Statistical tests of the Gaussian sampler. Every bound below is rigorous for exact N(0, 1)
 * samples, and the failure probabilities of all checks in this file add up to less than 1e-6
 * (each check's share is stated beside it), so a red test here means a broken sampler, not bad luck.
 * Negative controls show the same checks reject near-misses (a 1 % wrong scale, light tails).
 */
import { describe, expect, it } from 'vitest';
import { addGaussianNoise, gaussianSample, gaussianVector } from '../../privacy/gaussian.js';
import { cryptoRandomSource, seededTestSource, uniform53 } from '../../privacy/random.js';
import { isFedloraError } from '../../shared/errors.js';
import { binomialBounds, chiSquareBounds, dkwEpsilon, erfc, ksStatistic, normalCdf } from './normal-stats.js';

const N = 1_000_000;
/** Each Bernstein/Chernoff/Laurent-Massart side fails with probability <= e^-18 = 1.5e-8. */
const X = 18;
const P3 = erfc(3 / Math.SQRT2); // P(|Z| > 3) = 0.0026998
const P4 = erfc(4 / Math.SQRT2); // P(|Z| > 4) = 6.334e-5

interface Verdicts {
  mean: boolean;
  variance: boolean;
  tail3: boolean;
  tail3Sides: boolean;
  tail4: boolean;
  ks: boolean;
  maxAbs: boolean;
}

/** Runs every check on N(0, 1) candidates; returns which ones pass. */
function judge(x: Float64Array): Verdicts {
  const n = x.length;
  let sum = 0;
  let squares = 0;
  let above3 = 0;
  let below3 = 0;
  let beyond4 = 0;
  let maxAbs = 0;
  for (const v of x) {
    sum += v;
    squares += v * v;
    if (v > 3) above3++;
    if (v < -3) below3++;
    if (Math.abs(v) > 4) beyond4++;
    maxAbs = Math.max(maxAbs, Math.abs(v));
  }
  const chi = chiSquareBounds(n, X); // sum of squares of n standard normals is exactly chi^2(n)
  const t3 = binomialBounds(n, P3, X);
  const side3 = binomialBounds(n, P3 / 2, X);
  const t4 = binomialBounds(n, P4, X);
  return {
    // mean of n standard normals is N(0, 1/n); P(|mean| > 6.5/sqrt(n)) = 8e-11
    mean: Math.abs(sum / n) < 6.5 / Math.sqrt(n),
    variance: squares > chi.low && squares < chi.high, // 2 sides x 1.5e-8
    tail3: above3 + below3 > t3.low && above3 + below3 < t3.high, // 3e-8
    tail3Sides: [above3, below3].every((c) => c > side3.low && c < side3.high), // 6e-8
    tail4: beyond4 > t4.low && beyond4 < t4.high, // 3e-8
    ks: ksStatistic(x.slice(), normalCdf) < dkwEpsilon(n, 1e-8), // 1e-8 (eps ~ 3.1e-3 at n = 1e6)
    // P(max |Z| > 7.5 among 1e6) <= 1e6 * 6.4e-14 = 6.4e-8
    maxAbs: maxAbs < 7.5,
  };
}

const ALL_PASS: Verdicts = { mean: true, variance: true, tail3: true, tail3Sides: true, tail4: true, ks: true, maxAbs: true };

describe('gaussianVector from the CSPRNG', () => {
  it('passes mean, variance, two-sided and one-sided tails at 3 and 4 sigma, KS, and max', () => {
    expect(judge(gaussianVector(N, 1))).toEqual(ALL_PASS);
  });

  it('pairs are uncorrelated: within a polar pair and across pairs', () => {
    const x = gaussianVector(N, 1);
    let within = 0;
    let across = 0;
    for (let i = 0; i + 2 < N; i += 2) {
      within += x[i]! * x[i + 1]!;
      across += x[i + 1]! * x[i + 2]!;
    }
    const m = N / 2;
    // Each sum has mean 0 and variance m. A product of two normals has sub-exponential tails, so
    // Bernstein for sub-exponential sums gives P(|S| > t) <= 2 exp(-t^2 / (4 m)) for t <= m:
    // t = 9.5 sqrt(m) -> 2 exp(-22.6) = 3e-10 per sum.
    expect(Math.abs(within)).toBeLessThan(9.5 * Math.sqrt(m));
    expect(Math.abs(across)).toBeLessThan(9.5 * Math.sqrt(m));
  });
});

describe('negative controls: the checks have power', () => {
  it('reject a sampler whose scale is 1 % off', () => {
    const x = gaussianVector(N, 1.01, seededTestSource('scale'));
    expect(judge(x).variance).toBe(false);
  });

  it('reject the Irwin-Hall approximation (sum of 12 uniforms - 6), whose tails are too light', () => {
    const source = seededTestSource('irwin-hall');
    const x = new Float64Array(N);
    for (let i = 0; i < N; i++) {
      let s = -6;
      for (let k = 0; k < 12; k++) s += uniform53(source);
      x[i] = s;
    }
    const v = judge(x);
    // Irwin-Hall: P(|x| > 3) = 0.00201 vs 0.00270 (2014 expected vs a lower bound of ~2390)
    expect(v.tail3).toBe(false);
    expect(v.mean && v.variance).toBe(true); // right moments: only the tail checks catch it
  });
});

describe('addGaussianNoise', () => {
  it('adds N(0, std^2) in place to a float32 buffer', () => {
    const n = 200_000;
    const target = new Float32Array(n).fill(10);
    addGaussianNoise(target, 3);
    let sum = 0;
    let squares = 0;
    for (const v of target) {
      sum += v - 10;
      squares += ((v - 10) / 3) ** 2;
    }
    expect(Math.abs(sum / n)).toBeLessThan((6.5 * 3) / Math.sqrt(n)); // 8e-11
    const chi = chiSquareBounds(n, X); // float32 rounding moves each term by ~1e-6: negligible
    expect(squares).toBeGreaterThan(chi.low);
    expect(squares).toBeLessThan(chi.high);
  });

  it('std 0 leaves the target unchanged; odd lengths are filled to the last element', () => {
    const t = new Float64Array([1, 2, 3]);
    addGaussianNoise(t, 0);
    expect([...t]).toEqual([1, 2, 3]);
    const odd = new Float64Array(3);
    addGaussianNoise(odd, 1);
    expect(odd.every((v) => v !== 0)).toBe(true);
  });

  it('is reproducible with the test source, and the sources differ by seed', () => {
    expect([...gaussianVector(5, 1, seededTestSource(7))]).toEqual([...gaussianVector(5, 1, seededTestSource(7))]);
    expect([...gaussianVector(5, 1, seededTestSource(7))]).not.toEqual([...gaussianVector(5, 1, seededTestSource(8))]);
    expect(gaussianSample(2, seededTestSource(7))).toBe(2 * gaussianVector(1, 1, seededTestSource(7))[0]!);
  });

  it('refuses a negative, NaN or infinite std, and a bad length, naming the parameter', () => {
    for (const std of [-1, Number.NaN, Infinity]) {
      let err: unknown;
      try {
        addGaussianNoise(new Float32Array(2), std);
      } catch (e) {
        err = e;
      }
      expect(isFedloraError(err, 'FL_ERR_PRIVACY_ARGUMENT')).toBe(true);
      expect((err as Error).message).toBe(`FL_ERR_PRIVACY_ARGUMENT: std must be a finite number >= 0, got ${std}`);
    }
    expect(() => gaussianVector(1.5, 1)).toThrow(/length must be an integer >= 0, got 1.5/);
  });
});

describe('normal-stats helpers are right (checked against python3 math.erfc)', () => {
  it('normalCdf matches python to 2e-7', () => {
    // python3 -c "import math; print(0.5*math.erfc(-x/math.sqrt(2)))"
    const ref: [number, number][] = [[-3, 0.0013498980316300957], [-1, 0.15865525393145707], [0, 0.5], [0.5, 0.6914624612740131], [1.96, 0.9750021048517795], [4, 0.9999683287581669]];
    for (const [x, p] of ref) expect(Math.abs(normalCdf(x) - p)).toBeLessThan(2e-7);
    expect(Math.abs(P3 - 0.0026997960632601913) / P3).toBeLessThan(2e-7);
    expect(Math.abs(P4 - 6.334248366623993e-5) / P4).toBeLessThan(2e-7);
  });
});

describe('sources', () => {
  it('uniform53 lies in [0, 1) with mean 1/2 from both sources', () => {
    for (const source of [cryptoRandomSource(), seededTestSource(1)]) {
      const n = 100_000;
      let sum = 0;
      let outside = 0;
      for (let i = 0; i < n; i++) {
        const u = uniform53(source);
        if (!(u >= 0 && u < 1)) outside++;
        sum += u;
      }
      expect(outside).toBe(0);
      // Hoeffding: P(|mean - 1/2| > t) <= 2 exp(-2 n t^2); t = 0.015 -> 2 exp(-45) = 6e-20
      expect(Math.abs(sum / n - 0.5)).toBeLessThan(0.015);
    }
  });
});
