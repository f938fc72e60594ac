/**
 * Issue 12: with the default overSelection (0.2), a job whose clientsPerRound equals the clients it
 * has used to wait the whole start grace (10 s by default) before every round, for clients that
 * could not come. With a quorum and every enrolled client connected, a round starts at once.
 */
import { describe, expect, it } from 'vitest';
import { SHA } from '../helpers.js';
import { useEngineHarness } from './harness.js';
import { TestClient } from '../protocol-client.js';

const modules = [{ path: 'model.layers.0.self_attn.q_proj', outFeatures: 4, inFeatures: 4 }];

const t = useEngineHarness({ modules, job: {} });

describe('round start', () => {
  it('after the first round, starts each round at once when every enrolled client is connected and they make a quorum (no grace)', async () => {
    // the first round waits the grace for clients still joining; the later ones must not
    await t.start({ engine: { startGraceMs: 3_000 } });
    // default overSelection 0.2: ceil(2 x 1.2) = 3 offered, but the job only ever has 2 clients
    const body = { strategy: 'fedavg', rounds: 3, clientsPerRound: 2, minClients: 2, rank: 2, seed: 1, model: { sha256: SHA, targetModules: ['q_proj'] } };
    const jobId = await t.createJob(body);
    const cs = await t.enrol(jobId, 2);
    let sentAt = 0;
    for (let round = 0; round < 3; round++) {
      const offers = await TestClient.offersFrom(cs, 2, 10_000);
      // the grace is 3 s: a later round offered within 1.5 s of the last update did not wait for it
      if (round > 0) expect(Date.now() - sentAt).toBeLessThan(1_500);
      for (const [c, o] of offers) expect(await c.send(o, TestClient.payload(o, (_n, i) => 0.01 * (i + round)))).toMatchObject({ ok: true });
      sentAt = Date.now();
    }
    expect(await cs[0]!.next('job_end')).toMatchObject({ status: 'completed', rounds: 3 });
  });
});
