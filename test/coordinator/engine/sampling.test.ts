/**
 * Issue 11 in the round engine: the quorum closes at exactly clientsPerRound updates even when
 * more are being opened at once, and user-level DP books the q of the round's secret Poisson draw
 * (offered / connected), shown in the job's privacy view, against mpmath.
 */
import { describe, expect, it } from 'vitest';
import { JobViewSchema } from '../../../shared/protocol/http.js';
import type { Offer } from '../../../shared/protocol/events.js';
import { sealUpdate } from '../../../privacy/envelope.js';
import { epsilonOfEvents } from '../../../privacy/accountant.js';
import type { ClientLink } from '../../../coordinator/engine/client-link.js';
import { configFromFlags } from '../../../coordinator/cli.js';
import { isFedloraError } from '../../../shared/errors.js';
import { SHA } from '../helpers.js';
import { useEngineHarness } from './harness.js';
import { TestClient } from '../protocol-client.js';
import { mechanismReference, referenceOrders } from '../../privacy/mechanism-reference.js';

const modules = [{ path: 'model.layers.0.self_attn.q_proj', outFeatures: 6, inFeatures: 5 }];

const t = useEngineHarness({ modules, job: { strategy: 'fedavg', rank: 2, seed: 3, model: { sha256: SHA, targetModules: ['q_proj'] } } });


/** The first `n` offers of round `round` among the clients (earlier rounds' offers are skipped). */
function offersOfRound(cs: readonly TestClient[], round: number, n: number, timeoutMs = 20_000): Promise<Array<[TestClient, Offer]>> {
  return new Promise((resolve, reject) => {
    const got: Array<[TestClient, Offer]> = [];
    const timer = setTimeout(() => reject(new Error(`only ${got.length} of ${n} offers of round ${round}`)), timeoutMs);
    for (const c of cs) {
      void (async () => {
        for (;;) {
          const o = await c.nextOffer();
          if (o.round !== round) continue;
          got.push([c, o]);
          if (got.length === n) {
            clearTimeout(timer);
            resolve(got);
          }
          return;
        }
      })().catch(() => {});
    }
  });
}

describe('round engine and issue 11', () => {
  it('aggregates exactly clientsPerRound updates when more arrive together (the quorum race)', async () => {
    const h = await t.start({ engine: { openWorkers: 0, seededSelection: true } });
    const jobId = await t.createJob({ rounds: 1, clientsPerRound: 2, minClients: 2, overSelection: 0.5 });
    const cs = await t.enrol(jobId, 3);
    const offers = await offersOfRound(cs, 0, 3);
    // All three updates enter the runner in the same tick (real links, real sealed envelopes), so
    // all are opened before the quorum's finish runs.
    const runner = h.coordinator.engine.runner(jobId)!;
    const links = (runner as unknown as { links: Map<string, ClientLink> }).links;
    const acks = await Promise.all(
      offers.map(([c, o]) => {
        const envelope = sealUpdate(TestClient.payload(o, () => 0.5, 4), { jobId, round: 0, attempt: o.attempt, clientId: c.clientId }, c.keys.sign.secretKey, c.coordinatorBoxKey);
        return runner.receiveUpdate(links.get(c.clientId)!, { jobId, round: 0, attempt: o.attempt, envelope });
      }),
    );
    expect(acks.filter((a) => a.ok)).toHaveLength(2);
    const refused = acks.filter((a) => !a.ok) as Array<{ ok: false; error: { code: string; message: string } }>;
    expect(refused.map((a) => a.error.code)).toEqual(['FL_ERR_ROUND_STATE']);
    expect(refused[0]!.error.message).toMatch(/already has its 2 updates/);
    const result = await cs[0]!.next('round_result');
    expect(result.participants).toBe(2);
    expect(result.metrics.examples).toBe(8);
  });

  it('books q = offered / connected of the secret Poisson draw, shows it, and matches mpmath', async () => {
    const h = await t.start({ engine: { startGraceMs: 60_000 } });
    // k = 2, over-selection 1: 4 offered; 8 clients: round 1 draws each of the 8 with q = 1/2
    const jobId = await t.createJob({ rounds: 2, clientsPerRound: 2, minClients: 1, overSelection: 1, privacy: { user: { noiseMultiplier: 1.3, clip: 0.1 }, budget: { epsilon: 1000, delta: 1e-5 } } });
    const cs = await t.enrol(jobId, 8);
    // The draw may offer any number of the 8 (1 included: minClients is 1), so every client answers
    // every offer it gets, and the test waits for the two rounds' results.
    for (const c of cs) {
      void (async () => {
        for (;;) {
          const o = await c.nextOffer();
          await c.send(o, TestClient.payload(o, () => 1, 5));
        }
      })().catch(() => {});
    }
    for (let round = 0; round < 2; round++) expect((await cs[0]!.next('round_result')).round).toBe(round);
    const view = JobViewSchema.parse((await h.api('GET', `/api/jobs/${jobId}`)).json);
    const booked = view.privacy.booked;
    // round 0 started once 4 of the 8 were connected (q = 4 / connected then); round 1 had all 8
    expect(booked.at(-1)).toMatchObject({ q: 0.5, noiseMultiplier: 1.3 });
    expect(booked.reduce((n, b) => n + b.rounds, 0)).toBe(2);
    expect(view.privacy.sampling).toBe('q = 4 / 8: each of 8 connected clients offered independently with this probability (secret CSPRNG draw)');
    const events = booked.map((b) => ({ q: b.q, sigma: b.noiseMultiplier, steps: b.rounds }));
    const ours = epsilonOfEvents(events, 1e-5);
    const ref = mechanismReference({ epsilon: [{ events, delta: 1e-5, orders: referenceOrders(ours.order) }] }).epsilon[0]!;
    expect(Math.abs(view.privacy.epsilon! - ref.epsilon) / ref.epsilon).toBeLessThan(1e-9);
  });

  it('`fedlora coordinator start` refuses engine.seededSelection', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const file = join(mkdtempSync(join(tmpdir(), 'fedlora-cfg-')), 'c.json');
    writeFileSync(file, JSON.stringify({ engine: { seededSelection: true } }));
    await expect(configFromFlags({ config: file })).rejects.toSatisfy((e: unknown) => isFedloraError(e, 'FL_ERR_INVALID_CONFIG') && /fedlora sim --reproducible-selection/.test(String(e)));
  });
});
