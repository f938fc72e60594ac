/**
 * User-level client sampling (privacy/client-sampling.ts) and the rate it books, against an
 * independent mpmath computation of the epsilon (test/privacy/mechanism-reference.py), with the
 * figures of issue 11: N = 100 enrolled, k = 10, over-selection 0.2 (12 offered), z = 1, 100
 * rounds, delta 1e-5.
 */
import { describe, expect, it } from 'vitest';
import { clientSampling, drawClients, drawFixedSize } from '../../privacy/client-sampling.js';
import { epsilonOfSampledGaussian } from '../../privacy/accountant.js';
import { createLedger, openAccount, sampledUserRounds, spend, spent } from '../../privacy/ledger.js';
import { seededTestSource } from '../../privacy/random.js';
import { isFedloraError } from '../../shared/errors.js';
import { mechanismReference, referenceOrders } from './mechanism-reference.js';

/** The epsilon the ledger reaches after `rounds` rounds booked with this sampling. */
function bookedEpsilon(q: number, rounds: number): number {
  let ledger = openAccount(createLedger(), 'job', 'j', { epsilon: 1e300, delta: 1e-5 });
  for (let r = 0; r < rounds; r++) ledger = spend(ledger, [{ kind: 'job', id: 'j', mechanism: sampledUserRounds({ samplingRate: q, noiseMultiplier: 1 }) }], `round ${r}`);
  return spent(ledger, 'job', 'j').epsilon;
}

describe('user-level client sampling (issue 11)', () => {
  it('books offered / connected for a secret draw, and q = 1 when the draw is no subsample or seeded', () => {
    expect(clientSampling(100, 12)).toMatchObject({ kind: 'poisson', q: 0.12, population: 100, target: 12 });
    expect(clientSampling(12, 12)).toMatchObject({ kind: 'all', q: 1 });
    expect(clientSampling(5, 12)).toMatchObject({ kind: 'all', q: 1 });
    expect(clientSampling(12, 12).note).toMatch(/no subsample/);
    expect(clientSampling(100, 12, true)).toMatchObject({ kind: 'seeded', q: 1 });
    expect(clientSampling(100, 12, true).note).toMatch(/seeded/);
    for (const bad of [[0, 1], [3, 0], [2.5, 1]] as const) {
      try {
        clientSampling(bad[0], bad[1]);
        expect.unreachable();
      } catch (e) {
        expect(isFedloraError(e, 'FL_ERR_PRIVACY_ARGUMENT')).toBe(true);
      }
    }
  });

  it('the issue figures: 9.48 with all 100 online, 96.1 with only the 12 offered online (was 7.90), against mpmath', () => {
    const online = bookedEpsilon(clientSampling(100, 12).q, 100);
    const onlyOffered = bookedEpsilon(clientSampling(12, 12).q, 100);
    const before = epsilonOfSampledGaussian(10 / 100, 1, 100, 1e-5); // q = k / enrolled, what was booked
    const ref = mechanismReference({
      epsilon: [
        { events: [{ q: 0.12, sigma: 1, steps: 100 }], delta: 1e-5, orders: referenceOrders(epsilonOfSampledGaussian(0.12, 1, 100, 1e-5).order) },
        { events: [{ q: 1, sigma: 1, steps: 100 }], delta: 1e-5, orders: referenceOrders(epsilonOfSampledGaussian(1, 1, 100, 1e-5).order) },
      ],
    }).epsilon;
    expect(Math.abs(online - ref[0]!.epsilon) / ref[0]!.epsilon).toBeLessThan(1e-9);
    expect(Math.abs(onlyOffered - ref[1]!.epsilon) / ref[1]!.epsilon).toBeLessThan(1e-9);
    expect(online).toBeCloseTo(9.48, 2);
    expect(onlyOffered).toBeCloseTo(96.1, 1);
    expect(before.epsilon).toBeCloseTo(7.9, 2);
  });

  it('the secret draw includes each client independently with probability q (20,000 draws, 5 binomial sd)', () => {
    const ids = Array.from({ length: 10 }, (_, i) => `c${i}`);
    const sampling = clientSampling(10, 3);
    const source = seededTestSource('client-draws');
    const hits = new Map(ids.map((id) => [id, 0]));
    const sizes = new Map<number, number>();
    const draws = 20_000;
    for (let d = 0; d < draws; d++) {
      const drawn = drawClients(ids, sampling, source);
      sizes.set(drawn.length, (sizes.get(drawn.length) ?? 0) + 1);
      for (const id of drawn) hits.set(id, hits.get(id)! + 1);
    }
    const sd = Math.sqrt(draws * 0.3 * 0.7);
    for (const n of hits.values()) expect(Math.abs(n - draws * 0.3)).toBeLessThan(5 * sd);
    // independent inclusions: the size is Binomial(10, 0.3), so P(empty) = 0.7^10 = 0.0282, not 0 as for a fixed-size draw
    const empty = sizes.get(0) ?? 0;
    expect(Math.abs(empty - draws * 0.7 ** 10)).toBeLessThan(5 * Math.sqrt(draws * 0.7 ** 10 * (1 - 0.7 ** 10)));
  });

  it('the default draws come from the CSPRNG: two draws of 3 of 40 from the same inputs differ', () => {
    const ids = Array.from({ length: 40 }, (_, i) => i);
    const a = Array.from({ length: 8 }, () => drawFixedSize(ids, 3).join(','));
    expect(new Set(a).size).toBeGreaterThan(1); // equal 8 times: probability (1/9880)^7
    const fixed = drawFixedSize(ids, 5, seededTestSource('fixed'));
    expect(new Set(fixed).size).toBe(5);
    expect(drawFixedSize(ids.slice(0, 2), 5)).toHaveLength(2);
  });
});
