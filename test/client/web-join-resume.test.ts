/**
 * The join page (issue 15) in headless Debian chromium, driven by Playwright against in-process
 * coordinators on loopback: a reload mid-job resumes the enrolment from the keys in IndexedDB
 * (the stored client id, not the spent token), and a wrong model folder is refused on the page
 * with the FL_ERR code and the file named, before anything is sent. Asserts from the page's DOM
 * and the coordinator's store.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { buildWebClient } from '../../client/web/build.js';
import { DenseMlp, saveDenseMlp } from '../../client/pretrain/mlp.js';
import { MLP_CONFIG, mlpFixture, mlpJob, startCoordinator, tempDir } from '../e2e/harness.js';
import { CHROMIUM, launchChromium } from './web-browser.js';

let fixture: Awaited<ReturnType<typeof mlpFixture>>;
/**
 * Rounds of the resumed job: enough that the page cannot finish the job while the test waits for
 * its enrolment to be stored and for training to start (a finished job would refuse the rejoin
 * with FL_ERR_JOB_FAILED, 'ended', and there would be nothing left to resume).
 */
const ROUNDS = 10;
let browser: Browser | undefined;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) return;
  await buildWebClient();
  fixture = await mlpFixture(1, 320);
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
});

/** What the page shows when a wait fails: its log and error box. */
async function pageState(page: Page): Promise<string> {
  return `page log:\n${await page.textContent('#log')}\nerror: ${await page.textContent('#error')}`;
}

/** Waits for the page's final status; on a timeout, the message carries the page's log. */
async function finalStatus(page: Page, timeout: number): Promise<string> {
  await page.waitForSelector('#status[data-final]', { timeout }).catch(async (e: Error) => {
    throw new Error(`${e.message}\n${await pageState(page)}`);
  });
  return (await page.getAttribute('#status', 'data-final')) ?? '';
}

describe.runIf(existsSync(CHROMIUM))('the join page: reload and wrong model folder (headless chromium)', () => {
  it('a reload mid-job resumes the enrolment with the stored client id (not the spent token) and the job completes', async () => {
    const { coordinator, api } = await startCoordinator();
    const context = await browser!.newContext();
    try {
      // One client (the page), 3 rounds of 80 steps: the job cannot finish while the page is away.
      const jobId = await api.createJob(mlpJob('fedavg', fixture.sha256, { rounds: ROUNDS, clientsPerRound: 1, minClients: 1, training: { epochs: 4, batchSize: 16, lr: 0.02 } }));
      const token = await api.token(jobId);
      const page = await context.newPage();
      page.setDefaultTimeout(60_000);
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(e.message));
      await page.goto(`${coordinator.url}/join#token=${token}&backend=wasm`);
      expect(await page.isHidden('#resume')).toBe(true);
      await page.setInputFiles('#model', fixture.modelDir);
      await page.setInputFiles('#data', fixture.shards[0]!);
      await page.click('#join');

      // Enrolled: the token is spent, the keys and the enrolment record are in this context's IndexedDB.
      const enrolledLine = page.locator('#log', { hasText: /enrolled in job \S+ as client \S+/ });
      await enrolledLine.waitFor({ state: 'attached' }).catch(async (e: Error) => {
        throw new Error(`${e.message}\n${await pageState(page)}`);
      });
      const clientId = /enrolled in job \S+ as client (\S+)/.exec((await page.textContent('#log')) ?? '')![1]!;
      expect(coordinator.store.enrolmentTokenInfo(token)?.used).toBe(true);
      const before = await api.job(jobId);
      expect(before.clientList.map((c) => c.id)).toEqual([clientId]);

      // Mid-job: training has begun (the progress bar moved); the page is reloaded.
      await expect
        .poll(() => page.$eval('#round-progress', (el) => (el as unknown as { value: number }).value), { timeout: 90_000, interval: 50 })
        .toBeGreaterThan(0);
      const atReload = await api.job(jobId);
      expect(atReload.status).not.toBe('completed');
      await page.reload();

      // The reloaded page knows this browser is enrolled and says to pick the files again.
      await page.locator('#resume').waitFor({ state: 'visible' });
      expect(await page.textContent('#resume')).toContain('pick the same folder and file and press Join to resume');
      expect(await page.isHidden('#status-box')).toBe(true);
      await page.setInputFiles('#model', fixture.modelDir);
      await page.setInputFiles('#data', fixture.shards[0]!);
      await page.click('#join');

      expect(await finalStatus(page, 180_000)).toBe('completed');
      expect(await page.textContent('#status')).toBe('job completed');
      const log = (await page.textContent('#log')) ?? '';
      // After the reload the page authenticated with its stored client id; it did not enrol again
      // (the spent token would have been refused: FL_ERR_ENROLMENT).
      expect(log).toContain(`authenticated as client ${clientId}`);
      expect(log).not.toMatch(/enrolled in job/);
      expect(log).not.toMatch(/created this browser's client keys/);
      // The page trained after the reload: it shows at least one committed round.
      const rows = await page.locator('#rounds tr').count();
      expect(rows).toBeGreaterThanOrEqual(1);
      expect(await page.isHidden('#error')).toBe(true);
      expect(pageErrors).toEqual([]);

      // The coordinator: one client, the same id before and after, the only one for that token.
      const after = await api.job(jobId);
      expect(after.status).toBe('completed');
      expect(after.clients).toBe(1);
      expect(after.clientList.map((c) => c.id)).toEqual([clientId]);
      const tokenIndex = coordinator.store.enrolmentTokenJob(token)!.tokenIndex;
      expect(coordinator.store.clientsOfJob(jobId).filter((c) => c.tokenIndex === tokenIndex).map((c) => c.id)).toEqual([clientId]);
      const accepted = coordinator.store.updates(jobId).filter((u) => u.status === 'accepted');
      expect(new Set(accepted.map((u) => u.clientId))).toEqual(new Set([clientId]));
      expect(new Set(accepted.map((u) => u.round))).toEqual(new Set(Array.from({ length: ROUNDS }, (_, r) => r)));
      // Rounds committed after the reload were trained by the resumed page.
      expect(after.roundsDetail.length - atReload.roundsDetail.length).toBeGreaterThanOrEqual(rows);
    } finally {
      await context.close();
      await coordinator.stop();
    }
  }, 300_000);

  /** Joins with `modelDir` and returns the page's error; asserts nothing reached the coordinator. */
  async function joinWithModel(modelDir: string): Promise<{ text: string; code: string | null }> {
    const { coordinator, api } = await startCoordinator();
    const context = await browser!.newContext();
    try {
      const jobId = await api.createJob(mlpJob('fedavg', fixture.sha256, { clientsPerRound: 1, minClients: 1 }));
      const token = await api.token(jobId);
      const page = await context.newPage();
      page.setDefaultTimeout(60_000);
      await page.goto(`${coordinator.url}/join#token=${token}&backend=wasm`);
      await page.locator('#job-details').waitFor({ state: 'visible' });
      await page.setInputFiles('#model', modelDir);
      await page.setInputFiles('#data', fixture.shards[0]!);
      await page.click('#join');
      await page.locator('#error').waitFor({ state: 'visible' });
      const text = (await page.textContent('#error')) ?? '';
      const code = await page.getAttribute('#error', 'data-code');
      expect(await page.textContent('#status')).toBe('stopped');
      expect(await page.isEnabled('#join')).toBe(true);
      // The worker stopped before connecting: no hello reached the coordinator.
      expect(await page.textContent('#log')).not.toMatch(/connected to|pinned the coordinator key/);
      // Nothing was sent: the token is unspent, the job has no client and no update.
      expect(coordinator.store.enrolmentTokenInfo(token)?.used).toBe(false);
      const view = await api.job(jobId);
      expect(view.clients).toBe(0);
      expect(view.clientList).toEqual([]);
      expect(view.roundsDetail).toEqual([]);
      expect(coordinator.store.updates(jobId)).toEqual([]);
      return { text, code };
    } finally {
      await context.close();
      await coordinator.stop();
    }
  }

  it('a model folder whose config.json is neither an mlp nor a llama (a ViT): FL_ERR_MODEL_CONFIG naming config.json and model_type, nothing sent', async () => {
    // A vision transformer's config.json (no vocab_size): the page must name the model type, not a missing key.
    const dir = join(tempDir('vit-model'), 'vit');
    mkdirSync(dir);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'vit', hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, intermediate_size: 3072, image_size: 224, patch_size: 16 }));
    copyFileSync(join(fixture.modelDir, 'model.safetensors'), join(dir, 'model.safetensors'));
    const { text, code } = await joinWithModel(dir);
    expect(code).toBe('FL_ERR_MODEL_CONFIG');
    expect(text).toContain('config.json');
    expect(text).toContain("/model/config.json: 'model_type' is 'vit'; fedlora's decoder loads 'llama', 'mistral', 'qwen2'");
    expect(text).toContain('(FL_ERR_MODEL_CONFIG) Nothing was sent to the coordinator.');
  }, 120_000);

  it("the digits mlp's config.json with another model's model.safetensors: FL_ERR_CHECKPOINT naming the file and tensor, nothing sent", async () => {
    const other = tempDir('other-mlp');
    const dense = new DenseMlp({ ...MLP_CONFIG, hidden_sizes: [20] }, { mean: new Float32Array(64).fill(8), std: new Float32Array(64).fill(8) }, 3);
    await saveDenseMlp(dense, other);
    dense.dispose();
    const dir = join(tempDir('mixed-model'), 'digits-mlp');
    mkdirSync(dir);
    copyFileSync(join(fixture.modelDir, 'config.json'), join(dir, 'config.json'));
    copyFileSync(join(other, 'model.safetensors'), join(dir, 'model.safetensors'));
    const { text, code } = await joinWithModel(dir);
    expect(code).toBe('FL_ERR_CHECKPOINT');
    expect(text).toContain('model.safetensors');
    expect(text).toMatch(/^FL_ERR_CHECKPOINT: \/model\/model\.safetensors: tensor '[^']+' is \[\d+, \d+\], config\.json needs \[\d+, \d+\]/);
    expect(text).toContain('(FL_ERR_CHECKPOINT) Nothing was sent to the coordinator.');
  }, 120_000);
});
