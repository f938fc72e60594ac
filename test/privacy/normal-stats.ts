/**
 * Statistics for testing Gaussian samplers, with bounds that hold rigorously (not by a normal
 * approximation), so a stated failure probability is a true upper bound.
 */

/**
 * erfc by the Chebyshev fit of Numerical Recipes (2nd ed., Sec. 6.2, `erfcc`): fractional error
 * below 1.2e-7 everywhere, far below the KS tolerances (~3e-3) it is used with.
 */
export function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}

/** The standard normal CDF. */
export function normalCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

/** Kolmogorov-Smirnov statistic D = sup |F_n(x) - cdf(x)| of the samples (sorted in place). */
export function ksStatistic(samples: Float64Array, cdf: (x: number) => number): number {
  samples.sort();
  const n = samples.length;
  let d = 0;
  for (let i = 0; i < n; i++) {
    const f = cdf(samples[i]!);
    d = Math.max(d, (i + 1) / n - f, f - i / n);
  }
  return d;
}

/**
 * Dvoretzky-Kiefer-Wolfowitz with Massart's (1990) constant: P(D_n > eps) <= 2 exp(-2 n eps^2).
 * @returns the eps that a correct sampler exceeds with probability <= failure
 */
export function dkwEpsilon(n: number, failure: number): number {
  return Math.sqrt(Math.log(2 / failure) / (2 * n));
}

/**
 * Bounds on a Binomial(n, p) count that hold except with probability <= 2 e^-x:
 * Bernstein above (t^2 = 2x (mu + t/3)), Chernoff below (t^2 = 2 x mu).
 */
export function binomialBounds(n: number, p: number, x: number): { low: number; high: number } {
  const mu = n * p;
  const up = x / 3 + Math.sqrt((x / 3) ** 2 + 2 * x * mu);
  return { low: mu - Math.sqrt(2 * x * mu), high: mu + up };
}

/**
 * Laurent & Massart (2000), Lemma 1, for X ~ chi^2(k): P(X - k >= 2 sqrt(k x) + 2x) <= e^-x and
 * P(k - X >= 2 sqrt(k x)) <= e^-x.
 */
export function chiSquareBounds(k: number, x: number): { low: number; high: number } {
  return { low: k - 2 * Math.sqrt(k * x), high: k + 2 * Math.sqrt(k * x) + 2 * x };
}
