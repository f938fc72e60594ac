import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CreateJobResponseSchema, EnrolmentResponseSchema, HealthSchema, JobViewSchema } from '../../../shared/protocol/http.js';
import { sealUpdate } from '../../../privacy/envelope.js';
import { ADMIN, SHA } from '../helpers.js';
import { TestClient } from '../protocol-client.js';

const CLI = join(import.meta.dirname, '..', 'fixtures', 'cli-child.ts');
const modules = [{ path: 'model.layers.0.self_attn.q_proj', outFeatures: 4, inFeatures: 3 }];

interface Child {
  proc: ChildProcess;
  url: string;
  lines: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `fedlora coordinator start` in a child process and waits for its URL line. */
async function startChild(db: string): Promise<Child> {
  const proc = spawn(process.execPath, ['--import', 'tsx', CLI, 'coordinator', 'start', '--db', db, '--port', '0', '--admin-token', ADMIN, '--log-level', 'silent'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const lines: string[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    proc.on('exit', (code) => reject(new Error(`coordinator exited (${code}) before listening`)));
    let listening = '';
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      lines.push(line);
      const m = /listening on (http:\/\/\S+)/.exec(line);
      if (m) listening = m[1]!;
      // The fingerprint line follows the URL line.
      if (line.startsWith('key fingerprint: ')) resolve(listening);
    });
  });
  return { proc, url, lines, exited };
}

async function api(url: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, ...(body !== undefined && { body: JSON.stringify(body) }) });
  return res.json();
}

let dir = '';
const children: Child[] = [];
const clients: TestClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  for (const c of children.splice(0)) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

describe('coordinator process: SIGKILL mid-round and restart', () => {
  it('resumes the job from the last committed round, keeps every committed record, refuses pre-crash envelopes, completes', async () => {
    dir = mkdtempSync(join(tmpdir(), 'fedlora-kill-'));
    const db = join(dir, 'fedlora.db');
    const first = await startChild(db);
    children.push(first);
    const fingerprintLine = first.lines.find((l) => l.startsWith('key fingerprint: '))!;
    const { id: jobId } = CreateJobResponseSchema.parse(
      await api(first.url, 'POST', '/api/jobs', { strategy: 'fedavg', rounds: 3, clientsPerRound: 2, minClients: 2, overSelection: 0, model: { sha256: SHA, targetModules: ['q_proj'] }, rank: 2, seed: 9 }),
    );
    const joined: TestClient[] = [];
    for (let i = 0; i < 2; i++) {
      const { token } = EnrolmentResponseSchema.parse(await api(first.url, 'POST', `/api/jobs/${jobId}/enrolments`));
      const c = new TestClient(first.url);
      clients.push(c);
      await c.join({ jobId, token, sha256: SHA, modules });
      joined.push(c);
    }
    // Round 0 commits.
    let offers = await Promise.all(joined.map((c) => c.nextOffer()));
    await Promise.all(joined.map((c, k) => c.send(offers[k]!, TestClient.payload(offers[k]!, () => k + 1, 5 + k))));
    await joined[0]!.next('round_result');
    const before = JobViewSchema.parse(await api(first.url, 'GET', `/api/jobs/${jobId}`));
    expect(before.round).toBe(1);
    // Round 1: one update is in, the other not yet, when the coordinator is killed.
    offers = await Promise.all(joined.map((c) => c.nextOffer()));
    expect(offers[0]).toMatchObject({ round: 1, attempt: 0 });
    expect(await joined[0]!.send(offers[0]!, TestClient.payload(offers[0]!, () => 3, 5))).toMatchObject({ ok: true });
    const preCrash = sealUpdate(TestClient.payload(offers[1]!, () => 4, 6), { jobId, round: 1, attempt: 0, clientId: joined[1]!.clientId }, joined[1]!.keys.sign.secretKey, joined[1]!.coordinatorBoxKey);
    first.proc.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');

    const second = await startChild(db);
    children.push(second);
    // Same persisted key pair, so clients' pinned fingerprints still hold.
    expect(second.lines).toContain(fingerprintLine);
    expect(HealthSchema.parse(await (await fetch(`${second.url}/healthz`)).json()).fingerprint).toBe(fingerprintLine.slice('key fingerprint: '.length));
    const after = JobViewSchema.parse(await api(second.url, 'GET', `/api/jobs/${jobId}`));
    expect(after).toMatchObject({ status: 'running', round: 1 });
    expect(after.roundsDetail).toEqual(before.roundsDetail);

    // The clients reconnect with their ids and keys.
    const back = joined.map((c) => {
      const r = new TestClient(second.url, c.keys);
      clients.push(r);
      return r;
    });
    for (let k = 0; k < 2; k++) expect((await back[k]!.join({ jobId, clientId: joined[k]!.clientId, sha256: SHA, modules })).round).toBe(1);
    offers = await Promise.all(back.map((c) => c.nextOffer()));
    // A fresh attempt number: the round resumes under attempt 1.
    expect(offers.map((o) => [o.round, o.attempt])).toEqual([[1, 1], [1, 1]]);
    const replay = await back[1]!.sendRaw({ jobId, round: 1, attempt: 1, envelope: preCrash });
    expect(replay).toMatchObject({ ok: false, error: { code: 'FL_ERR_ENVELOPE_BINDING' } });
    for (let round = 1; round < 3; round++) {
      if (round > 1) offers = await Promise.all(back.map((c) => c.nextOffer()));
      const acks = await Promise.all(back.map((c, k) => c.send(offers[k]!, TestClient.payload(offers[k]!, () => round + k, 5 + k))));
      expect(acks.every((a) => a.ok)).toBe(true);
      await back[0]!.next('round_result');
    }
    expect(await back[0]!.next('job_end')).toMatchObject({ status: 'completed', rounds: 3 });
    const done = JobViewSchema.parse(await api(second.url, 'GET', `/api/jobs/${jobId}`));
    expect(done.roundsDetail.map((r) => [r.round, r.attempts])).toEqual([[0, 1], [1, 2], [2, 1]]);
    expect(done.roundsDetail[0]).toEqual(before.roundsDetail[0]);

    // Graceful shutdown on SIGTERM: exit status 0.
    second.proc.kill('SIGTERM');
    expect(await second.exited).toEqual({ code: 0, signal: null });
  });
});
