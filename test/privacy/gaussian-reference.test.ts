/**
 * The Ziggurat sampler (privacy/gaussian.ts) judged by an independent computation: scipy's
 * one-sample Kolmogorov-Smirnov test against N(0, 1), its two-sample test against numpy's own
 * normal generator, and scipy's moments, on the very samples we drew (written to a file).
 *
 * Tolerances: for a correct sampler each p-value is uniform on [0, 1], so "p > 1e-7" fails with
 * probability 1e-7 per check; skewness and excess kurtosis of n normals have standard errors
 * sqrt(6/n) and sqrt(24/n), and their sampling distributions are near-normal at n = 10^6, so 6.5
 * standard errors fail with probability ~1e-10. A red test means a broken sampler, not bad luck.
 * The negative control shows the same checks reject a sampler 2 % off in scale (the KS test's
 * power at n = 10^6: a scale error e moves the CDF by ~0.24 e, against a critical 0.0029).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { gaussianVector, zigguratTables } from '../../privacy/gaussian.js';
import { ChaCha20RandomSource, seededTestSource } from '../../privacy/random.js';
import { binomialBounds, erfc, ksStatistic, normalCdf } from './normal-stats.js';

const N = 1_000_000;
const dir = mkdtempSync(join(tmpdir(), 'fedlora-gauss-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SCIPY = String.raw`
import json, sys
import numpy as np
from scipy import stats
x = np.fromfile(sys.argv[1], dtype='<f8')
one = stats.kstest(x, 'norm')
ref = np.random.default_rng(int(sys.argv[2])).standard_normal(x.size)
two = stats.ks_2samp(x, ref)
print(json.dumps({"ks": float(one.statistic), "p": float(one.pvalue), "p2": float(two.pvalue),
                  "mean": float(x.mean()), "var": float(x.var()), "skew": float(stats.skew(x)),
                  "kurt": float(stats.kurtosis(x))}))
`;

interface Scipy {
  ks: number;
  p: number;
  p2: number;
  mean: number;
  var: number;
  skew: number;
  kurt: number;
}

function scipy(x: Float64Array, name: string): Scipy {
  const file = join(dir, `${name}.f64`);
  writeFileSync(file, new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
  const r = spawnSync('python3', ['-c', SCIPY, file, '20261204'], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`scipy reference failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Scipy;
}

/** Every check of the file on one sample; true where it passes. */
function verdicts(x: Float64Array, s: Scipy): Record<string, boolean> {
  const n = x.length;
  return {
    ks: s.p > 1e-7,
    ks2: s.p2 > 1e-7,
    mean: Math.abs(s.mean) < 6.5 / Math.sqrt(n),
    variance: Math.abs(s.var - 1) < 6.5 * Math.sqrt(2 / n),
    skew: Math.abs(s.skew) < 6.5 * Math.sqrt(6 / n),
    kurtosis: Math.abs(s.kurt) < 6.5 * Math.sqrt(24 / n),
  };
}

const ALL = { ks: true, ks2: true, mean: true, variance: true, skew: true, kurtosis: true };

describe('the Ziggurat sampler against scipy', () => {
  it('the ChaCha20 CSPRNG source: KS (one- and two-sample), mean, variance, skewness, kurtosis all pass', () => {
    const x = gaussianVector(N, 1, new ChaCha20RandomSource());
    const s = scipy(x, 'chacha');
    expect(verdicts(x, s)).toEqual(ALL);
    // our own KS statistic is the same number as scipy's: the in-repo checks compute what they claim
    expect(Math.abs(ksStatistic(x.slice(), normalCdf) - s.ks)).toBeLessThan(1e-6);
  });

  it('a seeded source, reproducibly: the same checks pass', () => {
    const x = gaussianVector(N, 1, seededTestSource('ziggurat-scipy'));
    expect(verdicts(x, scipy(x, 'seeded'))).toEqual(ALL);
  });

  it('the tail beyond r = 3.654 (drawn by the tail algorithm) has the normal mass, on both sides', () => {
    const x = gaussianVector(4 * N, 1, new ChaCha20RandomSource());
    const r = zigguratTables.R;
    let above = 0;
    let below = 0;
    for (const v of x) {
      if (v > r) above++;
      else if (v < -r) below++;
    }
    // P(Z > r) = erfc(r / sqrt 2) / 2 = 1.29e-4; Chernoff bounds at e^-18 per side
    const bounds = binomialBounds(x.length, erfc(r / Math.SQRT2) / 2, 18);
    for (const c of [above, below]) {
      expect(c).toBeGreaterThan(bounds.low);
      expect(c).toBeLessThan(bounds.high);
    }
  });

  it('negative control: a sampler 2 % off in scale fails the variance and both KS checks', () => {
    const x = gaussianVector(N, 1.02, seededTestSource('ziggurat-scaled'));
    const v = verdicts(x, scipy(x, 'scaled'));
    expect(v.variance).toBe(false);
    expect(v.ks).toBe(false);
    expect(v.ks2).toBe(false);
  });

  it('the tables close: the top layer ends at f(0) = 1 (Marsaglia & Tsang r and v for 256 layers)', () => {
    expect(Math.abs(zigguratTables.closure - 1)).toBeLessThan(1e-9);
    const X = zigguratTables.X;
    for (let i = 1; i < X.length; i++) expect(X[i]!).toBeLessThan(X[i - 1]!);
  });
});
