/**
 * `npm run bench accountant`: how fast the RDP accountant answers.
 *  1. epsilon of a 10,000-step DP-SGD run (q = 0.01, sigma = 1.1, delta = 1e-5) over the 156
 *     default orders, and of a mixed composition (three mechanisms, as a ledger with a Fed-SB
 *     initial release sees);
 *  2. calibration: the smallest sigma for epsilon = 3 (q = 0.01, 10,000 steps), and for a
 *     user-level job with half the clients each round (q = 0.5, 100 rounds), whose fractional
 *     orders are the slow, alternating series;
 *  baseline, measured in the same run: the naive evaluation of the integer-order binomial sum
 *  A_alpha = sum_i C(alpha, i) q^i (1-q)^(alpha-i) exp((i^2 - i)/(2 sigma^2)) directly in float64
 *  (no log space), on the integer orders 2..63 where it does not overflow. We report the ratio on
 *  those same orders, and how many default orders the naive form cannot evaluate at all.
 */
import { machineLine } from './machine.js';
import { DEFAULT_ORDERS } from '../privacy/rdp.js';
import { epsilonFromRdp } from '../privacy/conversion.js';
import { composeRdp, epsilonOfEvents, epsilonOfSampledGaussian } from '../privacy/accountant.js';
import { smallestSigma } from '../privacy/calibration.js';
import { canSpend, createLedger, openAccount, spend, userLevelRounds } from '../privacy/ledger.js';

function naiveRdp(q: number, sigma: number, alpha: number): number {
  let a = 0;
  let binom = 1;
  for (let i = 0; i <= alpha; i++) {
    if (i > 0) binom = (binom * (alpha - i + 1)) / i;
    a += binom * q ** i * (1 - q) ** (alpha - i) * Math.exp((i * i - i) / (2 * sigma * sigma));
  }
  return Math.log(a) / (alpha - 1);
}

/** Median milliseconds per call over `rounds` timed batches after a warm-up. */
function time(f: () => unknown, minMs = 300): number {
  f();
  const samples: number[] = [];
  const deadline = performance.now() + minMs * 5;
  while (samples.length < 5 || (performance.now() < deadline && samples.length < 50)) {
    let n = 0;
    const t0 = performance.now();
    let t1 = t0;
    while (t1 - t0 < minMs / 5) {
      f();
      n++;
      t1 = performance.now();
    }
    samples.push((t1 - t0) / n);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!;
}

export async function run(): Promise<void> {
  const [q, sigma, steps, delta] = [0.01, 1.1, 10_000, 1e-5];
  const integerOrders = DEFAULT_ORDERS.filter((a) => Number.isInteger(a) && a <= 63);

  const full = time(() => epsilonOfSampledGaussian(q, sigma, steps, delta));
  const mixed = [
    { q: 1, sigma: 5, steps: 1 },
    { q: 0.01, sigma: 1.1, steps: 10_000 },
    { q: 0.25, sigma: 1.4, steps: 60 },
  ];
  const mixedMs = time(() => epsilonOfEvents(mixed, delta));
  const oursInteger = time(() => epsilonOfSampledGaussian(q, sigma, steps, delta, { orders: integerOrders }));
  const naiveInteger = time(() => {
    const rdp = integerOrders.map((a) => steps * naiveRdp(q, sigma, a));
    return epsilonFromRdp(integerOrders, rdp, delta);
  });
  const naiveAll = DEFAULT_ORDERS.filter((a) => Number.isInteger(a)).map((a) => naiveRdp(q, sigma, a));
  const naiveFailures = naiveAll.filter((v) => !Number.isFinite(v)).length;
  const ours = epsilonOfSampledGaussian(q, sigma, steps, delta, { orders: integerOrders });
  const naive = epsilonFromRdp(integerOrders, integerOrders.map((a) => steps * naiveRdp(q, sigma, a)), delta);

  console.log(`epsilon, ${steps} steps, q=${q}, sigma=${sigma}, delta=${delta}, ${DEFAULT_ORDERS.length} default orders: ${full.toFixed(2)} ms (${(1000 / full).toFixed(0)} evaluations/s) -> ${JSON.stringify(epsilonOfSampledGaussian(q, sigma, steps, delta))}`);
  console.log(`epsilon of a 3-mechanism composition (${composeRdp(mixed).length} orders): ${mixedMs.toFixed(2)} ms`);
  console.log(`integer orders 2..63 only: ours (log space) ${oursInteger.toFixed(3)} ms, naive float64 ${naiveInteger.toFixed(3)} ms, ratio ours/naive ${(oursInteger / naiveInteger).toFixed(2)}`);
  console.log(`  same answer on those orders: ours ${ours.epsilon} @ ${ours.order}, naive ${naive.epsilon} @ ${naive.order} (relative difference ${(Math.abs(ours.epsilon - naive.epsilon) / ours.epsilon).toExponential(1)})`);
  console.log(`  the naive form overflows at ${naiveFailures} of the ${naiveAll.length} integer default orders (e.g. alpha = 128: exp(8128 / (2 sigma^2)) = Infinity), and has no fractional orders at all`);

  for (const c of [
    { q: 0.01, steps: 10_000, delta, epsilon: 3 },
    { q: 0.5, steps: 100, delta, epsilon: 3 },
  ]) {
    let result = smallestSigma(c);
    const ms = time(() => (result = smallestSigma(c)), 1000);
    console.log(`calibration q=${c.q}, ${c.steps} steps, epsilon<=${c.epsilon}: sigma=${result.sigma} in ${ms.toFixed(1)} ms (${result.evaluations} accountant evaluations, ${(ms / result.evaluations).toFixed(2)} ms each)`);
  }
  // The coordinator's per-round question: may round r + 1 run? (a job 200 rounds in, 100 client accounts)
  let ledger = openAccount(createLedger(), 'job', 'bench', { epsilon: 50, delta: 1e-5 });
  const round = userLevelRounds({ clientsPerRound: 10, totalClients: 100, noiseMultiplier: 1.0 });
  for (let r = 0; r < 200; r++) ledger = spend(ledger, [{ kind: 'job', id: 'bench', mechanism: round }], `round ${r + 1}`);
  for (let c = 0; c < 100; c++) ledger = openAccount(ledger, 'client', `bench/${c}`, { epsilon: 8, delta: 1e-5 });
  const request = [{ kind: 'job' as const, id: 'bench', mechanism: round }];
  const checkMs = time(() => canSpend(ledger, request));
  const spendMs = time(() => spend(ledger, request, 'round 201'));
  console.log(`ledger, job 200 rounds in (+100 client accounts): canSpend ${(checkMs * 1000).toFixed(0)} us, spend ${(spendMs * 1000).toFixed(0)} us per round (the mechanism's RDP is memoised)`);
  console.log(machineLine());
}
