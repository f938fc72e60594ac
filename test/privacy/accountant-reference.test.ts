/**
 * The accountant against an independent computation: test/privacy/accountant-reference.py, which
 * evaluates the papers' formulas with mpmath at 25 digits - integer orders by the exact binomial
 * sum, fractional orders by quadrature of the defining integral (not by the series we sum), and
 * both conversions - over a grid of (q, sigma, steps, delta).
 *
 * Tolerances, and why:
 *  - log erfc: 1e-14 relative. Each branch of privacy/log-space.ts is cancellation-free and loses
 *    at most ~1.5 digits (erfc = 1 - erf at x < 1.5).
 *  - RDP per order: 1e-10 relative. Our value is log(A) / (alpha - 1); where log A >= 1e-5 it is
 *    summed as log A (absolute error ~1e-16, i.e. relative 1e-16 / log A <= 1e-11), below that as
 *    A - 1 (no cancellation against the 1), so a tiny-q case (log A ~ 1e-11) is held to 1e-12.
 *  - epsilon: 1e-9 relative, with the same optimal order. epsilon = T rdp + (conversion terms),
 *    each accurate to ~1e-11 relative as above; 1e-9 leaves room for T = 1e5 steps of round-off.
 *    (Outside the project the figures are checked against dp_accounting / TF Privacy / Opacus
 *    to 1e-6: see docs/privacy-accounting.md for where those libraries differ from each other.)
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from "node:fs";
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DEFAULT_ORDERS, rdpSampledGaussian } from '../../privacy/rdp.js';
import { epsilonOfSampledGaussian } from '../../privacy/accountant.js';
import { logErfc } from '../../privacy/log-space.js';
import type { Conversion } from '../../privacy/conversion.js';

const script = fileURLToPath(new URL('./accountant-reference.py', import.meta.url));

interface EpsilonCase {
  q: number;
  sigma: number;
  steps: number;
  delta: number;
  conversion: Conversion;
}

// Both sides of every branch boundary of logErfc (+-1.5, 6), the middle of each branch, and far tails.
const erfcPoints = [-40, -6, -1.6, -1.5, -1.49, -0.5, -1e-8, 0, 1e-8, 0.25, 0.9, 1.2, 1.49, 1.5, 1.51, 1.75, 2, 2.5, 3.3, 4.4, 5.5, 5.99, 6, 6.01, 7, 26, 27.5, 60, 1e3, 1e6];

const fractional = DEFAULT_ORDERS.filter((a) => !Number.isInteger(a));
const rdpCases = [
  // every 14th fractional order plus some integer ones, on mechanisms where log A >= 1e-6
  { q: 0.01, sigma: 1.0, orders: [...fractional.filter((_, k) => k % 14 === 0), 2, 5, 17, 63, 256] },
  { q: 0.5, sigma: 7.58, orders: [1.1, 1.5, 2.3, 4.6, 7.4, 10.9, 3, 40, 1024] }, // the slowly converging, alternating tail
  { q: 0.3, sigma: 0.5, orders: [1.1, 1.9, 3.7, 6.1, 9.9, 11, 30, 128] },
  { q: 0.9, sigma: 2.0, orders: [1.2, 2.5, 5.5, 8.8, 4, 512] },
  { q: 0.004, sigma: 1.3, orders: [1.5, 3.3, 6.6, 10.2, 18, 64 - 1] },
];
// log A ~ 1e-11: both the integer sum and the fractional series are taken as A - 1, keeping 12 digits.
const tinyQCase = { q: 1e-6, sigma: 10, orders: [2, 3, 10, 32, 63, 128, 1.1, 2.5, 7.3] };

const grid: Array<Omit<EpsilonCase, 'conversion'>> = [
  { q: 0.01, sigma: 4, steps: 10_000, delta: 1e-5 }, // Abadi et al. 2016
  { q: 256 / 60_000, sigma: 1.1, steps: 14_040, delta: 1e-5 }, // TF Privacy MNIST tutorial
  { q: 0.004, sigma: 1.3, steps: 3_750, delta: 1e-5 }, // Opacus MNIST example
  { q: 0.5, sigma: 0.8, steps: 10, delta: 1e-5 }, // optimum at a small fractional order
  { q: 0.05, sigma: 0.5, steps: 1_000, delta: 1e-5 },
  { q: 0.1, sigma: 1.0, steps: 100, delta: 1e-5 },
  { q: 0.3, sigma: 2.0, steps: 100, delta: 1e-3 },
  { q: 1e-4, sigma: 0.8, steps: 100_000, delta: 1e-6 },
  { q: 1, sigma: 5, steps: 10, delta: 1e-5 }, // plain Gaussian mechanism
  { q: 0.9, sigma: 10, steps: 1_000, delta: 1e-3 },
];
// Every case with the improved conversion; the first five with the classic one as well.
const epsilonCases: EpsilonCase[] = [
  ...grid.map((c) => ({ ...c, conversion: 'improved' as const })),
  ...grid.slice(0, 5).map((c) => ({ ...c, conversion: 'classic' as const })),
];

/**
 * The Python side computes fractional orders by quadrature, ~0.1 s each, so for epsilon it gets
 * every integer order and the fractional orders within 0.3 of our optimum (the RDP-to-epsilon
 * curve is smooth in alpha; the per-order RDP comparison above covers the other fractional orders).
 */
function referenceOrdersFor(order: number): number[] {
  return DEFAULT_ORDERS.filter((a) => Number.isInteger(a) || Math.abs(a - order) <= 0.3);
}

const ours = epsilonCases.map((c) => epsilonOfSampledGaussian(c.q, c.sigma, c.steps, c.delta, { conversion: c.conversion }));

function runReference(): {
  erfc: number[];
  rdp: number[][];
  epsilon: Array<{ epsilon: number; order: number }>;
  selfcheck: number[];
} {
  const request = {
    erfc: erfcPoints,
    rdp: [...rdpCases, tinyQCase],
    epsilon: epsilonCases.map((c, k) => ({ ...c, orders: referenceOrdersFor(ours[k]!.order) })),
  };
  if (process.env.DUMP_REF !== undefined) writeFileSync(process.env.DUMP_REF, JSON.stringify(request));
  const r = spawnSync('python3', [script], { input: JSON.stringify(request), encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`reference script failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const reference = runReference();
const relative = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

describe('accountant vs an independent mpmath computation', () => {
  it('the reference quadrature agrees with the exact sum at integer orders (self-check)', () => {
    // 20-digit quadrature; it only has to be far below the 1e-10 it is used to check.
    for (const err of reference.selfcheck) expect(err).toBeLessThan(1e-14);
  });

  it('log erfc to 1e-14 relative (absolute near 0, where log erfc crosses 0)', () => {
    erfcPoints.forEach((x, k) => {
      const want = reference.erfc[k]!;
      const got = logErfc(x);
      expect(Math.abs(got - want), `x = ${x}`).toBeLessThanOrEqual(1e-14 * Math.max(1, Math.abs(want)));
    });
  });

  it('RDP per order, fractional orders against quadrature of the defining integral, to 1e-10', () => {
    rdpCases.forEach((c, k) => {
      c.orders.forEach((a, j) => {
        const got = rdpSampledGaussian(c.q, c.sigma, a);
        expect(relative(got, reference.rdp[k]![j]!), `q=${c.q} sigma=${c.sigma} order=${a}`).toBeLessThan(1e-10);
      });
    });
  });

  it('RDP stays accurate when A is within 1e-11 of 1 (q = 1e-6, sigma = 10), integer and fractional orders', () => {
    const want = reference.rdp[rdpCases.length]!;
    tinyQCase.orders.forEach((a, j) => {
      expect(want[j]!).toBeGreaterThan(0);
      expect(relative(rdpSampledGaussian(tinyQCase.q, tinyQCase.sigma, a), want[j]!), `order ${a}`).toBeLessThan(1e-12);
    });
  });

  it.each(epsilonCases.map((c, k) => [k, c] as const))('epsilon and optimal order, case %i: %o', (k, c) => {
    const got = ours[k]!;
    const want = reference.epsilon[k]!;
    expect(got.order).toBe(want.order);
    expect(relative(got.epsilon, want.epsilon), `${c.conversion} q=${c.q} sigma=${c.sigma}`).toBeLessThan(1e-9);
  });
});
