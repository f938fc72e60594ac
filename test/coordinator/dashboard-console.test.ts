/**
 * The dashboard as the operator's console (issue 15), in Debian's chromium driven by Playwright
 * against a real coordinator (port 0, temp SQLite file): the admin token typed once per session,
 * a job made from the form (the API's zod issues shown next to the fields they name), enrolment
 * links that open `/join#token=...` (copy button), two protocol clients enrolled with the links'
 * tokens, a round committed, and the adapter's two PEFT files downloaded and compared with the
 * API's tar. Ends with a screenshot: into docs/dashboard-console.png only with
 * FEDLORA_UPDATE_SCREENSHOTS=1 (a plain test run must not dirty the checkout), else a temp file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ADMIN, SHA, startHarness, type Harness } from './helpers.js';
import { TestClient } from './protocol-client.js';

const CHROMIUM = '/usr/bin/chromium';
const modules = [{ path: 'model.layers.0.self_attn.q_proj', outFeatures: 6, inFeatures: 5 }];

let h: Harness | undefined;
let browser: Browser | undefined;
const clients: TestClient[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: the console test needs Debian's chromium (apt-get install chromium; .ci/run installs it)`);
  h = await startHarness();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}, 30_000);

afterAll(async () => {
  for (const c of clients.splice(0)) c.close();
  await browser?.close();
  await h?.close();
});

/** Fills a form field by its JSON path. */
const field = (p: Page, path: string) => p.locator(`#new-job [data-field="${path}"]`);

describe('the coordinator console (Playwright, headless chromium)', () => {
  it('token once per session, job form with field errors, enrolment links, a round, the adapter files', async () => {
    const context = await browser!.newContext({ viewport: { width: 1100, height: 900 }, acceptDownloads: true });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: h!.coordinator.url });
    const p = await context.newPage();
    p.setDefaultTimeout(15_000);
    await p.goto(`${h!.coordinator.url}/dashboard`);
    await p.locator('#status', { hasText: 'enter the admin token' }).waitFor();
    await p.fill('#token', ADMIN);
    await p.click('#login button');
    await p.locator('#status', { hasText: 'live' }).waitFor();
    // Once per session: a reload connects without asking, and the token is in no URL.
    await p.reload();
    await p.locator('#status', { hasText: 'live' }).waitFor();
    expect(await p.locator('#login').isHidden()).toBe(true);
    expect(p.url()).toBe(`${h!.coordinator.url}/dashboard`);

    // The API's validation, shown next to each field it names.
    await field(p, 'rounds').fill('0');
    await field(p, 'minClients').fill('3');
    await field(p, 'model.sha256').fill('not-hex');
    await field(p, 'model.targetModules').fill('q_proj');
    await p.click('#create-job');
    await p.locator('#new-job-status', { hasText: 'FL_ERR_INVALID_CONFIG: the job was not created' }).waitFor();
    const errorOf = (path: string) => p.locator(`#new-job label:has([data-field="${path}"]) .field-error`);
    expect(await errorOf('rounds').textContent()).toMatch(/^rounds: Too small/);
    expect(await errorOf('model.sha256').textContent()).toBe('model.sha256: must be 64 hex digits (the SHA-256 of the weights file)');
    expect(await errorOf('minClients').textContent()).toBe('minClients: must be <= clientsPerRound (2), got 3');
    expect((await h!.api('GET', '/api/jobs')).json).toEqual({ jobs: [] });

    // Corrected: the job is created and appears.
    await field(p, 'rounds').fill('2');
    await field(p, 'minClients').fill('2');
    await field(p, 'model.sha256').fill(SHA);
    await field(p, 'rank').fill('2');
    await field(p, '(more)').fill('{"overSelection": 0, "seed": 3}');
    await p.click('#create-job');
    const created = await p.locator('#new-job-status.created').textContent();
    const jobId = /created (job_\S+)/.exec(created ?? '')?.[1];
    expect(jobId).toBeDefined();
    expect(await p.locator('#new-job .field-error').count()).toBe(0);
    const job = `[data-job="${jobId}"]`;
    await p.locator(job, { hasText: 'fedavg: round 0 of 2, 0 clients enrolled' }).waitFor();
    const spec = ((await h!.api('GET', `/api/jobs/${jobId}`)).json as { spec: Record<string, unknown> }).spec;
    expect(spec).toMatchObject({ rounds: 2, clientsPerRound: 2, minClients: 2, rank: 2, seed: 3, overSelection: 0, model: { sha256: SHA, targetModules: ['q_proj'] } });

    // Two enrolment links; the copy button puts the link on the clipboard.
    const links: string[] = [];
    for (let i = 0; i < 2; i++) {
      await p.locator(`${job} button.new-link`).click();
      const input = p.locator(`${job} .enrol-link input`).nth(i);
      await input.waitFor();
      links.push(await input.inputValue());
    }
    for (const l of links) expect(l).toMatch(new RegExp(`^${h!.coordinator.url}/join#token=[A-Za-z0-9_-]+$`));
    await p.locator(`${job} .enrol-link button`).first().click();
    await p.locator(`${job} .enrol-link button`, { hasText: 'copied' }).waitFor();
    // (in the page: the browser's navigator, which Node's types do not declare)
    const readClipboard = () => (globalThis as unknown as { navigator: { clipboard: { readText(): Promise<string> } } }).navigator.clipboard.readText();
    expect(await p.evaluate(readClipboard)).toBe(links[0]);

    // The links' tokens enrol two clients; they run round 0.
    const cs: TestClient[] = [];
    for (const l of links) {
      const c = new TestClient(h!.coordinator.url);
      clients.push(c);
      await c.join({ jobId: jobId!, token: new URLSearchParams(new URL(l).hash.slice(1)).get('token')!, sha256: SHA, modules });
      cs.push(c);
    }
    const offers = await TestClient.offersFrom(cs, 2);
    const acks = await Promise.all(offers.map(([c, o]) => c.send(o, TestClient.payload(o, (_n, i) => 0.01 * (i + 1), 5, { loss: 1.75, accuracy: 0.5 }))));
    expect(acks.every((a) => a.ok)).toBe(true);
    await p.locator(`${job} table.rounds tr[data-round="0"]`).waitFor();

    // The adapter: two files, byte for byte those of the API's tar.
    await p.locator(`${job} button.get-adapter`).click();
    const tar = Buffer.from((await h!.api('GET', `/api/jobs/${jobId}/adapter`)).bytes);
    for (const name of ['adapter_config.json', 'adapter_model.safetensors']) {
      const link = p.locator(`${job} .adapter-files a`, { hasText: name });
      await link.waitFor();
      const [download] = await Promise.all([p.waitForEvent('download'), link.click()]);
      expect(download.suggestedFilename()).toBe(name);
      const got = readFileSync(await download.path());
      expect(got.length).toBeGreaterThan(0);
      // In the tar, the member's data follows its 512-byte header, whose first bytes are its name.
      const at = tar.indexOf(Buffer.from(`${name}\0`));
      expect(at).toBeGreaterThanOrEqual(0);
      expect(tar.subarray(at + 512, at + 512 + got.length).equals(got)).toBe(true);
      if (name.endsWith('.json')) expect(JSON.parse(got.toString('utf8'))).toMatchObject({ peft_type: 'LORA', r: 2 });
    }

    const shot = process.env.FEDLORA_UPDATE_SCREENSHOTS === '1' ? 'docs/dashboard-console.png' : join(tmpdir(), `fedlora-dashboard-console-${process.pid}.png`);
    const png = await p.screenshot({ path: shot, fullPage: true });
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    if (!shot.startsWith('docs/')) rmSync(shot);
    await context.close();
  }, 60_000);
});
