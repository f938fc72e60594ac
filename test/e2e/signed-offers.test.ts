/**
 * Signed offers against a man in the middle: a real agent talks to a real coordinator through a
 * TCP proxy on loopback (test/e2e/tamper-proxy.ts). When the proxy changes the offered state, the
 * agent refuses the offer with FL_ERR_OFFER_SIGNATURE and never trains or sends an update; through
 * the same proxy left transparent, the same job completes (so the refusal is the tampering's).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { isFedloraError } from '../../shared/errors.js';
import { makeAgent, mlpFixture, mlpJob, startCoordinator, startRun } from './harness.js';
import { startTamperProxy } from './tamper-proxy.js';

let modelDir: string;
let sha256: string;
let shards: string[];

beforeAll(async () => {
  ({ modelDir, sha256, shards } = await mlpFixture(1, 24));
});

describe('offers signed with the coordinator key', () => {
  it('an agent refuses an offer whose state a proxy changed, and completes the job through the same proxy untouched', async () => {
    const { coordinator, api } = await startCoordinator();
    const evil = await startTamperProxy(coordinator.url, true);
    const clean = await startTamperProxy(coordinator.url, false);
    try {
      const spec = mlpJob('fedavg', sha256, { rounds: 1, clientsPerRound: 1, minClients: 1 });
      const tamperedJob = await api.createJob(spec);
      const attacked = await makeAgent(evil.url, tamperedJob, await api.token(tamperedJob), modelDir, shards[0]!);
      const error = await startRun(attacked.agent).then(
        () => null,
        (e: unknown) => e,
      );
      expect(isFedloraError(error, 'FL_ERR_OFFER_SIGNATURE'), String(error)).toBe(true);
      expect(String(error)).toMatch(/does not verify with the pinned coordinator key/);
      expect(evil.tampered).toBeGreaterThanOrEqual(1);
      // Nothing was trained on the changed state: no round committed.
      expect((await api.job(tamperedJob)).round).toBe(0);

      const controlJob = await api.createJob(spec);
      const control = await makeAgent(clean.url, controlJob, await api.token(controlJob), modelDir, shards[0]!);
      const summary = await startRun(control.agent);
      expect(summary.status).toBe('completed');
      expect(summary.updatesAccepted).toBe(1);
      expect(clean.tampered).toBe(0);
    } finally {
      await evil.close();
      await clean.close();
      await coordinator.stop();
    }
  }, 60_000);
});
