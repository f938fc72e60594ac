/**
 * 30% of the clients drop in the middle of a round (they leave after receiving the offer, while
 * training): the round commits with the others at the minimum, and the job completes without them.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { quietProgress } from '../../client/agent/progress.js';
import { isFedloraError } from '../../shared/errors.js';
import { makeAgent, mlpFixture, mlpJob, startCoordinator, type TestClient } from './harness.js';

let modelDir: string;
let sha256: string;
let shards: string[];

beforeAll(async () => {
  ({ modelDir, sha256, shards } = await mlpFixture(10, 24));
});

describe('30% of clients dropping mid-round', () => {
  it('commits the round with the 7 that stay, and completes the job', async () => {
    const { coordinator, api } = await startCoordinator();
    try {
      const jobId = await api.createJob(mlpJob('ffa', sha256, { rounds: 2, clientsPerRound: 10, minClients: 7 }));
      const dropping = new Set([0, 4, 8]);
      const left: Array<Promise<void>> = [];
      const clients: TestClient[] = [];
      for (const [i, file] of shards.entries()) {
        const progress = dropping.has(i)
          ? {
              ...quietProgress(),
              // Leaves once its round-0 offer is in hand and training has started.
              roundStart: () => {
                clients[i]!.agent.stop('dropping out mid-round');
              },
            }
          : quietProgress();
        clients.push(await makeAgent(api.url, jobId, await api.token(jobId), modelDir, file, { progress }));
      }
      const runs = clients.map((c, i) => {
        const run = c.agent.run();
        if (!dropping.has(i)) return run;
        left.push(run.then(() => expect.unreachable('a dropped agent should not finish'), (e: unknown) => expect(isFedloraError(e, 'FL_ERR_CONNECTION')).toBe(true)));
        return null;
      });
      const summaries = await Promise.all(runs.filter((r) => r !== null));
      await Promise.all(left);

      const job = await api.job(jobId);
      expect(job.status).toBe('completed');
      const stayed = clients.filter((_, i) => !dropping.has(i)).map((c) => c.agent.id!).sort();
      const dropped = clients.filter((_, i) => dropping.has(i)).map((c) => c.agent.id!);
      expect(job.roundsDetail).toHaveLength(2);
      for (const r of job.roundsDetail) {
        expect([...r.participants].sort()).toEqual(stayed);
        for (const id of dropped) expect(r.participants).not.toContain(id);
        expect(r.metrics.examples).toBe(7 * 24);
      }
      expect(summaries).toHaveLength(7);
      for (const s of summaries) {
        expect(s.status).toBe('completed');
        expect(s.updatesAccepted).toBe(2);
      }
    } finally {
      await coordinator.stop();
    }
  });
});
