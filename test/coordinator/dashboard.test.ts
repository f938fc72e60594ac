import { afterEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io } from 'socket.io-client';
import { CreateJobResponseSchema, EnrolmentResponseSchema } from '../../shared/protocol/http.js';
import { DASHBOARD_NAMESPACE, LiveJobSchema, SnapshotSchema, type LiveJob } from '../../shared/protocol/dashboard.js';
import { SOCKET_PATH } from '../../shared/protocol/events.js';
import { ADMIN, SHA, startHarness, type Harness } from './helpers.js';
import { TestClient } from './protocol-client.js';

const modules = [{ path: 'model.layers.0.self_attn.q_proj', outFeatures: 4, inFeatures: 4 }];
const CHROMIUM = '/usr/bin/chromium';

let h: Harness | undefined;
const closers: Array<() => void> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) c();
  await h?.close();
  h = undefined;
});

async function jobWithClient(): Promise<{ jobId: string; client: TestClient }> {
  const jobId = CreateJobResponseSchema.parse((await h!.api('POST', '/api/jobs', { strategy: 'ffa', rounds: 2, clientsPerRound: 2, minClients: 2, model: { sha256: SHA, targetModules: ['q_proj'] }, rank: 2 })).json).id;
  const { token } = EnrolmentResponseSchema.parse((await h!.api('POST', `/api/jobs/${jobId}/enrolments`)).json);
  const client = new TestClient(h!.coordinator.url);
  closers.push(() => client.close());
  await client.join({ jobId, token, sha256: SHA, modules });
  return { jobId, client };
}

describe('dashboard live feed', () => {
  it('refuses a connection without the admin token', async () => {
    h = await startHarness();
    const socket = io(`${h.coordinator.url}${DASHBOARD_NAMESPACE}`, { path: SOCKET_PATH, transports: ['websocket'], reconnection: false, auth: { token: 'nope' } });
    closers.push(() => socket.disconnect());
    const error = await new Promise<Error>((resolve) => socket.on('connect_error', resolve));
    expect(error.message).toMatch(/FL_ERR_UNAUTHORIZED/);
  });

  it('sends a snapshot, then the job again when a client joins', async () => {
    h = await startHarness();
    const { jobId } = await jobWithClient();
    const socket = io(`${h.coordinator.url}${DASHBOARD_NAMESPACE}`, { path: SOCKET_PATH, transports: ['websocket'], reconnection: false, auth: { token: ADMIN } });
    closers.push(() => socket.disconnect());
    const snapshot = SnapshotSchema.parse(await new Promise((resolve) => socket.on('snapshot', resolve)));
    const job = snapshot.jobs.find((j) => j.id === jobId)!;
    expect(job).toMatchObject({ status: 'running', clients: 1, current: null });
    expect(job.clientList[0]).toMatchObject({ connected: true, backend: { name: 'test', device: 'loopback' } });
    // The same picture over HTTP, behind the admin token.
    expect(SnapshotSchema.parse((await h.api('GET', '/api/dashboard')).json).jobs.map((j) => j.id)).toContain(jobId);
    expect((await h.api('GET', '/api/dashboard', undefined, null)).status).toBe(401);
    const update = new Promise<LiveJob>((resolve) => socket.on('job', (j: unknown) => resolve(LiveJobSchema.parse(j))));
    const { token } = EnrolmentResponseSchema.parse((await h.api('POST', `/api/jobs/${jobId}/enrolments`)).json);
    const second = new TestClient(h.coordinator.url);
    closers.push(() => second.close());
    await second.join({ jobId, token, sha256: SHA, modules });
    const live = await update;
    expect(live.id).toBe(jobId);
    expect(live.clients).toBe(2);
  });
});

describe.runIf(existsSync(CHROMIUM))('dashboard page in a real browser (headless chromium)', () => {
  it('takes no admin token from the URL: a #token fragment is ignored and the page asks for the token', async () => {
    h = await startHarness();
    const { jobId } = await jobWithClient();
    const profile = mkdtempSync(join(tmpdir(), 'fedlora-chromium-'));
    closers.push(() => rmSync(profile, { recursive: true, force: true }));
    // --dump-dom prints the DOM once the page has loaded and its virtual time budget has run out;
    // virtual time waits for pending fetches, so the page's first picture (fetched over HTTP,
    // then kept live over the feed) is rendered by then.
    const dom = await new Promise<string>((resolve, reject) =>
      execFile(
        CHROMIUM,
        ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', `--user-data-dir=${profile}`, '--virtual-time-budget=10000', '--dump-dom', `${h!.coordinator.url}/dashboard#token=${ADMIN}`],
        { timeout: 50_000, maxBuffer: 16 * 1024 * 1024 },
        (error, stdout) => (error ? reject(error) : resolve(stdout)),
      ),
    );
    // The page with the job is in dashboard-browser.test.ts (the token typed into the form).
    expect(dom).not.toContain(`data-job="${jobId}"`);
    expect(dom).toContain('enter the admin token');
    expect(dom).toMatch(/<form id="login">/);
  }, 60_000);
});
