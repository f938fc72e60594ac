import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { clientSeed, selectClients } from '../../../coordinator/engine/selection.js';

describe('seeded client selection', () => {
  it('picks min(count, clients) distinct clients, the same ones for the same seed, round and attempt, whatever the input order', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.stringMatching(/^[a-z0-9]{1,8}$/), { minLength: 0, maxLength: 40 }), fc.nat(50), fc.nat(), fc.nat(100), fc.nat(5), (ids, count, seed, round, attempt) => {
        const a = selectClients(ids, count, seed, round, attempt);
        expect(a).toHaveLength(Math.min(count, ids.length));
        expect(new Set(a).size).toBe(a.length);
        for (const id of a) expect(ids).toContain(id);
        expect(selectClients([...ids].reverse(), count, seed, round, attempt)).toEqual(a);
      }),
    );
  });

  it('changes with the attempt, so a retried round may draw other clients', () => {
    const ids = Array.from({ length: 30 }, (_, i) => `c${i}`);
    expect(selectClients(ids, 5, 1, 0, 0)).not.toEqual(selectClients(ids, 5, 1, 0, 1));
  });

  it('selects every client with probability count / N (3000 draws; 4.5 binomial std tolerance)', () => {
    const ids = Array.from({ length: 10 }, (_, i) => `c${i}`);
    const hits = new Map(ids.map((id) => [id, 0]));
    const draws = 3000;
    for (let r = 0; r < draws; r++) for (const id of selectClients(ids, 3, 42, r, 0)) hits.set(id, hits.get(id)! + 1);
    // Each client is a Binomial(3000, 0.3): mean 900, std sqrt(3000 * 0.3 * 0.7) = 25.1. With 10
    // clients, |x - 900| > 4.5 std has probability ~7e-5 in all: not a flaky bound.
    for (const n of hits.values()) expect(Math.abs(n - 900)).toBeLessThan(4.5 * 25.1);
  });

  it('gives each client a uint32 seed per round', () => {
    const s = clientSeed(7, 3, 'cl_a');
    expect(Number.isInteger(s) && s >= 0 && s < 2 ** 32).toBe(true);
    expect(clientSeed(7, 3, 'cl_a')).toBe(s);
    expect(clientSeed(7, 4, 'cl_a')).not.toBe(s);
    expect(clientSeed(7, 3, 'cl_b')).not.toBe(s);
  });
});
