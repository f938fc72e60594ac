/**
 * The join page's checks before and at Join (issue 15), in headless Debian chromium driven by
 * Playwright against in-process coordinators on loopback: the job is shown from the enrolment
 * token before Join (`POST /join/job`), a bad token gets a clear message, and a coordinator whose
 * key changed since this browser pinned it is refused with FL_ERR_KEY_CHANGED's message, sending
 * nothing. Asserts from the page's DOM and the coordinators' stores.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { buildWebClient } from '../../client/web/build.js';
import { join } from 'node:path';
import { ADMIN_TOKEN, api, mlpFixture, mlpJob, startCoordinator, tempDir } from '../e2e/harness.js';
import { Coordinator } from '../../coordinator/coordinator.js';
import { ERROR_CODES } from '../../shared/errors.js';
import { launchChromium } from './web-browser.js';

let fixture: Awaited<ReturnType<typeof mlpFixture>>;
let browser: Browser | undefined;

beforeAll(async () => {
  await buildWebClient();
  fixture = await mlpFixture(2, 24);
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
});

/** The text of `selector` once it is visible. */
async function visibleText(page: Page, selector: string): Promise<string> {
  const l = page.locator(selector);
  await l.waitFor({ state: 'visible' });
  return (await l.textContent()) ?? '';
}

describe('the join page before and at Join (headless chromium)', () => {
  it('shows the job from the token before Join (strategy, model, rounds, privacy target), without spending it', async () => {
    const { coordinator, api } = await startCoordinator();
    const context = await browser!.newContext();
    try {
      const spec = mlpJob('fedavg', fixture.sha256, { rounds: 3, clientsPerRound: 2, minClients: 2, privacy: { client: { targetEpsilon: 4 }, budget: { epsilon: 4, delta: 1e-5 } } });
      const jobId = await api.createJob(spec);
      const token = await api.token(jobId);
      const page = await context.newPage();
      page.setDefaultTimeout(15_000);
      await page.goto(`${coordinator.url}/join#token=${token}`);
      await page.locator('#job-details').waitFor({ state: 'visible' });
      expect(await page.textContent('#job-text')).toBe(`${jobId} (pending)`);
      expect(await page.textContent('#job-details dd[data-field="strategy"]')).toBe('fedavg');
      expect(await page.textContent('#job-details dd[data-field="rounds"]')).toBe('3 (0 done), 2 clients per round');
      expect(await page.textContent('#job-details dd[data-field="model"]')).toContain('LoRA rank 2');
      expect(await page.textContent('#job-details dd[data-field="privacy target"]')).toBe('client-side DP-SGD (clip 1, target epsilon 4); budget epsilon 4 at delta 0.00001');
      expect(await page.isHidden('#error')).toBe(true);
      // Nothing was enrolled by looking: the job still has no client and the token is unspent.
      expect((await api.job(jobId)).clients).toBe(0);
      expect(coordinator.store.enrolmentTokenInfo(token)?.used).toBe(false);
    } finally {
      await context.close();
      await coordinator.stop();
    }
  }, 60_000);

  it('a token the coordinator never issued: the page says so before Join', async () => {
    const { coordinator } = await startCoordinator();
    const context = await browser!.newContext();
    try {
      const page = await context.newPage();
      page.setDefaultTimeout(15_000);
      await page.goto(`${coordinator.url}/join#token=made-up-token`);
      const text = await visibleText(page, '#error');
      expect(text).toContain('this enrolment link is not one the coordinator issued (unknown token): ask the job owner for a new link');
      expect(text).toContain('(FL_ERR_ENROLMENT) Nothing was sent to the coordinator.');
      expect(await page.getAttribute('#error', 'data-code')).toBe('FL_ERR_ENROLMENT');
    } finally {
      await context.close();
      await coordinator.stop();
    }
  }, 60_000);

  it("a coordinator whose key changed since this browser pinned it: FL_ERR_KEY_CHANGED's message and nothing sent", async () => {
    // The coordinator: the page enrols and pins its key (in this context's IndexedDB).
    const first = await startCoordinator();
    const url = first.coordinator.url;
    const context = await browser!.newContext();
    let second: Coordinator | undefined;
    try {
      const jobId = await first.api.createJob(mlpJob('fedavg', fixture.sha256, { clientsPerRound: 2, minClients: 2 }));
      const page = await context.newPage();
      page.setDefaultTimeout(60_000);
      await page.goto(`${url}/join#token=${await first.api.token(jobId)}`);
      await page.setInputFiles('#model', fixture.modelDir);
      await page.setInputFiles('#data', fixture.shards[0]!);
      await page.click('#join');
      await page.locator('#status', { hasText: 'enrolled, waiting for a round' }).waitFor();
      expect((await first.api.job(jobId)).clients).toBe(1);
      await page.close();
      await first.coordinator.stop();

      // The same coordinator (database, job, enrolled client, address) with another key pair: what
      // a coordinator whose key was replaced, or someone in the middle, presents.
      const otherKeys = join(tempDir('keys'), 'other.keys.json');
      second = await Coordinator.start({ db: first.db, port: Number(new URL(url).port), adminToken: ADMIN_TOKEN, logLevel: 'silent', keyFile: otherKeys });
      expect(second.url).toBe(url);
      const again = await context.newPage();
      again.setDefaultTimeout(60_000);
      await again.goto(`${url}/join`);
      await again.locator('#resume').waitFor({ state: 'visible' });
      await again.setInputFiles('#model', fixture.modelDir);
      await again.setInputFiles('#data', fixture.shards[0]!);
      await again.click('#join');
      const text = await visibleText(again, '#error');
      expect(await again.getAttribute('#error', 'data-code')).toBe('FL_ERR_KEY_CHANGED');
      expect(text).toMatch(/fingerprint/i);
      expect(text).toContain('(FL_ERR_KEY_CHANGED) Nothing was sent to the coordinator.');
      expect(ERROR_CODES.FL_ERR_KEY_CHANGED).toMatch(/pinned fingerprint/);
      // The page never authenticated to the new key: its client stays unconnected, no round, no update.
      const view = await api(url).job(jobId);
      expect(view.clients).toBe(1);
      expect(view.clientList[0]!.connected).toBe(false);
      expect(view.roundsDetail).toEqual([]);
      expect(second.store.updates(jobId, 0)).toEqual([]);
    } finally {
      await context.close();
      if (first.coordinator.store.isOpen) await first.coordinator.stop();
      await second?.stop();
    }
  }, 120_000);
});
