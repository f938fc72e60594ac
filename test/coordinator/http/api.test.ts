import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateJobResponseSchema, EnrolmentResponseSchema, ErrorBodySchema, HealthSchema, JobListSchema, JobViewSchema } from '../../../shared/protocol/http.js';
import { ADMIN, minimalJob, startHarness, type Harness } from '../helpers.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ http: { rateLimit: 1000 } });
});
afterAll(async () => {
  await h.close();
});

function expectError(r: { status: number; json: unknown }, status: number, code: string, pattern?: RegExp): void {
  expect(r.status).toBe(status);
  const body = ErrorBodySchema.parse(r.json);
  expect(body.error.code).toBe(code);
  if (pattern) expect(body.error.message).toMatch(pattern);
}

describe('HTTP API', () => {
  it('creates a job from the minimal body of issue 5 and shows it pending', async () => {
    const created = await h.api('POST', '/api/jobs', minimalJob);
    expect(created.status).toBe(201);
    const { id } = CreateJobResponseSchema.parse(created.json);
    const view = await h.api('GET', `/api/jobs/${id}`);
    expect(view.status).toBe(200);
    const job = JobViewSchema.parse(view.json);
    expect(job).toMatchObject({ id, status: 'pending', round: 0, rounds: 3, strategy: 'fedsb', roundsDetail: [], clients: 0 });
    // nothing booked yet: no (q, noise multiplier) entries and no sampling note
    expect(job.privacy).toEqual({ epsilon: null, delta: null, budgetEpsilon: null, rounds: 0, booked: [], sampling: null });
    expect(job.reason).toBeUndefined();
    const list = JobListSchema.parse((await h.api('GET', '/api/jobs')).json);
    expect(list.jobs.map((j) => j.id)).toContain(id);
  });

  it('refuses a bad body with FL_ERR_INVALID_CONFIG naming the field', async () => {
    const r = await h.api('POST', '/api/jobs', { ...minimalJob, clientsPerRound: 0 });
    expectError(r, 400, 'FL_ERR_INVALID_CONFIG', /clientsPerRound/);
    expect(ErrorBodySchema.parse(r.json).error.field).toBe('clientsPerRound');
    expectError(await h.api('POST', '/api/jobs', '{"strategy": '), 400, 'FL_ERR_INVALID_ARGUMENT', /not valid JSON/);
    expectError(await h.api('POST', '/api/jobs', { ...minimalJob, strategy: 'sgd' }), 400, 'FL_ERR_INVALID_CONFIG', /strategy/);
  });

  it('takes coordinator-side DP for sum strategies and refuses it for flora, pointing to client-side DP-SGD', async () => {
    expect((await h.api('POST', '/api/jobs', { ...minimalJob, privacy: { user: { noiseMultiplier: 1, adaptive: true }, budget: { epsilon: 8 } } })).status).toBe(201);
    const r = await h.api('POST', '/api/jobs', { ...minimalJob, strategy: 'flora', privacy: { user: { noiseMultiplier: 1 } } });
    expectError(r, 400, 'FL_ERR_INVALID_CONFIG', /privacy\.client/);
    const ok = await h.api('POST', '/api/jobs', { ...minimalJob, privacy: { client: { noiseMultiplier: 1.1, clip: 0.5 }, budget: { epsilon: 8 } } });
    expect(ok.status).toBe(201);
  });

  it('refuses a body over the size limit with 413 FL_ERR_BODY_TOO_LARGE', async () => {
    const big = { ...minimalJob, model: { ...minimalJob.model, name: 'x'.repeat(2 * 1024 * 1024) } };
    expectError(await h.api('POST', '/api/jobs', big), 413, 'FL_ERR_BODY_TOO_LARGE');
  });

  it('needs the bearer admin token on /api', async () => {
    expectError(await h.api('GET', '/api/jobs', undefined, null), 401, 'FL_ERR_UNAUTHORIZED', /Bearer/);
    expectError(await h.api('POST', '/api/jobs', minimalJob, 'wrong-token'), 401, 'FL_ERR_UNAUTHORIZED', /wrong/);
    expect((await h.api('GET', '/api/jobs', undefined, ADMIN)).status).toBe(200);
  });

  it('answers unknown jobs and routes with 404 FL_ERR_NOT_FOUND', async () => {
    expectError(await h.api('GET', '/api/jobs/job_missing'), 404, 'FL_ERR_NOT_FOUND', /job_missing/);
    expectError(await h.api('POST', '/api/jobs/job_missing/enrolments', {}), 404, 'FL_ERR_NOT_FOUND');
    expectError(await h.api('GET', '/api/nothing-here'), 404, 'FL_ERR_NOT_FOUND');
  });

  it('makes distinct one-use enrolment tokens with an expiry', async () => {
    const { id } = CreateJobResponseSchema.parse((await h.api('POST', '/api/jobs', minimalJob)).json);
    const a = EnrolmentResponseSchema.parse((await h.api('POST', `/api/jobs/${id}/enrolments`)).json);
    const b = EnrolmentResponseSchema.parse((await h.api('POST', `/api/jobs/${id}/enrolments`, { expiresInSeconds: 60 })).json);
    expect(a.token).not.toBe(b.token);
    expect(a.jobId).toBe(id);
    expect(b.expiresAt - Date.now()).toBeLessThanOrEqual(60_000);
    expectError(await h.api('POST', `/api/jobs/${id}/enrolments`, { expiresInSeconds: 0 }), 400, 'FL_ERR_INVALID_CONFIG', /expiresInSeconds/);
  });

  it('has no adapter before the job starts: 409 FL_ERR_ROUND_STATE', async () => {
    const { id } = CreateJobResponseSchema.parse((await h.api('POST', '/api/jobs', minimalJob)).json);
    expectError(await h.api('GET', `/api/jobs/${id}/adapter`), 409, 'FL_ERR_ROUND_STATE', /no global adapter yet/);
  });

  it('serves the adapter of a job with a known layout as a tar that PEFT-style readers accept', async () => {
    const modules = [
      { path: 'model.layers.0.self_attn.q_proj', outFeatures: 8, inFeatures: 6 },
      { path: 'model.layers.0.self_attn.v_proj', outFeatures: 4, inFeatures: 6 },
    ];
    const { id } = CreateJobResponseSchema.parse((await h.api('POST', '/api/jobs', { ...minimalJob, strategy: 'ffa', model: { ...minimalJob.model, modules } })).json);
    // A job whose spec lists its modules starts at creation: its initial adapter is there at once.
    expect(JobViewSchema.parse((await h.api('GET', `/api/jobs/${id}`)).json).status).toBe('running');
    const r = await h.api('GET', `/api/jobs/${id}/adapter`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/x-tar');
    const dir = mkdtempSync(join(tmpdir(), 'fedlora-adapter-'));
    try {
      writeFileSync(join(dir, 'a.tar'), r.bytes);
      execFileSync('tar', ['-xf', join(dir, 'a.tar'), '-C', dir]);
      const config = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      expect(config).toMatchObject({ peft_type: 'LORA', r: 4 });
      expect(config.target_modules).toEqual(expect.arrayContaining(modules.map((m) => m.path)));
      const weights = readFileSync(join(dir, 'adapter_model.safetensors'));
      const headerLength = Number(weights.readBigUInt64LE(0));
      const header = JSON.parse(weights.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { shape: number[] }>;
      expect(header['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight']!.shape).toEqual([4, 6]);
      expect(header['base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight']!.shape).toEqual([4, 4]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('serves /healthz with the key fingerprint and /metrics in Prometheus text', async () => {
    const health = HealthSchema.parse((await h.api('GET', '/healthz', undefined, null)).json);
    expect(health.fingerprint).toBe(h.coordinator.printableFingerprint);
    const metrics = await h.api('GET', '/metrics', undefined, null);
    const text = new TextDecoder().decode(metrics.bytes);
    for (const name of ['fedlora_rounds_total', 'fedlora_updates_accepted_total', 'fedlora_updates_refused_total', 'fedlora_update_bytes_total', 'fedlora_round_duration_seconds', 'fedlora_connected_clients']) {
      expect(text).toContain(`# TYPE ${name}`);
    }
  });

  it('sets helmet security headers', async () => {
    const r = await h.api('GET', '/healthz', undefined, null);
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    expect(r.headers.get('x-powered-by')).toBeNull();
  });
});

describe('HTTP API rate limit', () => {
  it('answers 429 FL_ERR_RATE_LIMITED past the limit', async () => {
    const limited = await startHarness({ http: { rateLimit: 3 } });
    try {
      for (let i = 0; i < 3; i++) expect((await limited.api('GET', '/api/jobs')).status).toBe(200);
      expectError(await limited.api('GET', '/api/jobs'), 429, 'FL_ERR_RATE_LIMITED', /retry later/);
    } finally {
      await limited.close();
    }
  });
});
