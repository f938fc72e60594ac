/**
 * The browser client (issue 15) in headless Debian chromium, driven by Playwright: the page at
 * /join, files picked with setInputFiles, training in its Web Worker on tfjs, against an
 * in-process coordinator on loopback, alongside a Node agent. Asserts from the page's DOM.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { buildWebClient } from '../../client/web/build.js';
import { makeAgent, mlpFixture, mlpJob, startCoordinator, startRun } from '../e2e/harness.js';
import { CHROMIUM, launchChromium } from './web-browser.js';

let fixture: Awaited<ReturnType<typeof mlpFixture>>;
let browser: Browser | undefined;
const cleanups: Array<() => void> = [];

beforeAll(async () => {
  await buildWebClient();
  fixture = await mlpFixture(2, 48);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  for (const c of cleanups) c();
});

async function openBrowser(): Promise<Browser> {
  browser ??= await launchChromium();
  return browser;
}

describe.runIf(existsSync(CHROMIUM))('the join page in headless chromium', () => {
  it('a browser client and a Node agent complete an mlp job together', async () => {
    const { coordinator, api } = await startCoordinator();
    try {
      const jobId = await api.createJob(mlpJob('fedavg', fixture.sha256, { clientsPerRound: 2, minClients: 2 }));
      const node = await makeAgent(coordinator.url, jobId, await api.token(jobId), fixture.modelDir, fixture.shards[0]!);
      const nodeRun = startRun(node.agent);
      const context = await (await openBrowser()).newContext();
      const page = await context.newPage();
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(e.message));
      await page.goto(`${coordinator.url}/join#token=${await api.token(jobId)}`);
      await expect(page.locator('text=they never leave this machine').count()).resolves.toBe(1);
      await page.setInputFiles('#model', fixture.modelDir);
      await page.setInputFiles('#data', fixture.shards[1]!);
      await page.click('#join');
      // Mid-round: the bar moves; the picture goes in docs/.
      await expect
        .poll(() => page.$eval('#round-progress', (el) => (el as unknown as { value: number }).value), { timeout: 90_000, interval: 100 })
        .toBeGreaterThan(0)
        .catch(async (e: Error) => {
          throw new Error(`${e.message}\npage log:\n${await page.textContent('#log')}\nerror: ${await page.textContent('#error')}`);
        });
      await page.screenshot({ path: 'docs/join-page.png', fullPage: true });
      await page.waitForSelector('#status[data-final]', { timeout: 120_000 });
      expect(await page.textContent('#status')).toBe('job completed');
      expect(await page.getAttribute('#status', 'data-final')).toBe('completed');
      expect(await page.textContent('#backend')).toMatch(/wasm|webgl|webgpu/);
      expect(await page.locator('#rounds tr').count()).toBe(2);
      expect(await page.locator('#rounds tr td:nth-child(2)').allTextContents()).toEqual(['2', '2']);
      expect(await page.isHidden('#error')).toBe(true);
      const summary = await nodeRun;
      expect(summary.status).toBe('completed');
      const job = await api.job(jobId);
      expect(job.status).toBe('completed');
      expect(pageErrors).toEqual([]);
      await context.close();
    } finally {
      await coordinator.stop();
    }
  }, 240_000);

  it('a malformed data file: the page names the line and nothing is sent', async () => {
    const { coordinator, api } = await startCoordinator();
    try {
      const jobId = await api.createJob(mlpJob('fedavg', fixture.sha256, { clientsPerRound: 2, minClients: 2 }));
      const dir = mkdtempSync(join(tmpdir(), 'fedlora-bad-data-'));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      const bad = join(dir, 'bad.csv');
      const header = [...Array.from({ length: 64 }, (_, i) => `f${i}`), 'label'].join(',');
      const row = (v: string) => [...Array.from({ length: 64 }, () => v), '3'].join(',');
      writeFileSync(bad, `${header}\n${row('0')}\n${row('0')}\n${row('x')}\n`);
      const context = await (await openBrowser()).newContext();
      const page = await context.newPage();
      await page.goto(`${coordinator.url}/join#token=${await api.token(jobId)}`);
      await page.setInputFiles('#model', fixture.modelDir);
      await page.setInputFiles('#data', bad);
      await page.click('#join');
      await page.waitForSelector('#error:not([hidden])', { timeout: 60_000 });
      const text = await page.textContent('#error');
      expect(text).toMatch(/bad\.csv:4/);
      expect(text).toMatch(/FL_ERR_DATA/);
      expect(text).toMatch(/Nothing was sent/);
      // The coordinator never saw this client: no enrolment, no update.
      const job = await api.job(jobId);
      expect(JSON.stringify(job)).not.toMatch(/"clients":\s*[1-9]/);
      await context.close();
    } finally {
      await coordinator.stop();
    }
  }, 120_000);
});
