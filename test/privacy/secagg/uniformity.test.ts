/**
 * What the coordinator sees of one client: its masked input y_u = q(x_u) + PRG(b_u) + sum +-PRG(s_uv)
 * mod 2^32. With the masks it must look uniform whatever x_u is; the test feeds the most
 * structured input there is (every coordinate the same) and checks each byte of the masked words
 * against the uniform distribution with a chi-square test.
 */
import { describe, it, expect } from 'vitest';
import { secAggConfig } from '../../../privacy/secagg/config.js';
import { inProcessParties } from '../../../privacy/secagg/in-process.js';

/**
 * The chi-square statistic of 256 bucket counts against the uniform distribution (255 degrees of freedom).
 * Threshold: scipy.stats.chi2.isf(1e-6 / 40, 255) = 397.8097 (python3 -c "import scipy.stats as s;
 * print(s.chi2.isf(1e-6/40, 255))"): the test below makes 40 comparisons (2 inputs x 5 clients x
 * 4 byte positions), so a correct implementation exceeds it in any of them with probability
 * < 1e-6 (union bound). The counts are 256 per bucket, where the chi-square
 * approximation of the multinomial is accurate.
 */
const CHI2_THRESHOLD = 397.8097;

function chiSquare(counts: Uint32Array, total: number): number {
  const expected = total / counts.length;
  let chi = 0;
  for (const c of counts) chi += (c - expected) ** 2 / expected;
  return chi;
}

function byteChiSquares(words: Uint32Array): number[] {
  return [0, 8, 16, 24].map((shift) => {
    const counts = new Uint32Array(256);
    for (const w of words) counts[(w >>> shift) & 255]!++;
    return chiSquare(counts, words.length);
  });
}

describe("the coordinator's view of one masked update", () => {
  const L = 65_536; // 256 expected per bucket
  const config = secAggConfig({ context: 'job/round-1', clients: ['a', 'b', 'c', 'd', 'e'], vectorLength: L, graphSeed: 'g' });

  function maskedInputs(value: number): Map<string, Uint32Array> {
    const { server, clients: parties } = inProcessParties(config);
    const clients = [...parties.values()];
    clients.forEach((c) => server.receiveAdvertise(c.advertiseKeys()));
    const keys = server.closeAdvertise();
    clients.forEach((c) => server.receiveShareKeys(c.shareKeys(keys.get(c.id)!)));
    const deliveries = server.closeShareKeys();
    return new Map(clients.map((c) => [c.id, c.maskedInput(deliveries.get(c.id)!, new Float64Array(L).fill(value)).masked]));
  }

  it('the test has power: the unmasked quantised input (all coordinates equal) fails it by far', () => {
    const constant = new Uint32Array(L).fill(2 ** 21); // q(0) with c = 8, T = 2^22
    expect(Math.max(...byteChiSquares(constant))).toBeGreaterThan(1000 * CHI2_THRESHOLD);
  });

  it('every byte of the masked integers is uniform (chi-square, failure probability < 1e-6), for any client and input', () => {
    for (const value of [0, 7.5]) {
      for (const [client, masked] of maskedInputs(value)) {
        const stats = byteChiSquares(masked);
        for (const chi of stats) expect(chi, `${client}, input ${value}: ${stats.map((s) => s.toFixed(1)).join(', ')}`).toBeLessThan(CHI2_THRESHOLD);
      }
    }
  });
});
