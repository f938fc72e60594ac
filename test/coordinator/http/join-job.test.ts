/**
 * `POST /join/job`: the join page's look-up of the job behind an enrolment token. A real
 * coordinator on port 0 (temp SQLite file), real fetch, no admin token.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { EnrolmentResponseSchema, ErrorBodySchema, JoinJobSchema } from '../../../shared/protocol/http.js';
import { SHA, minimalJob, startHarness, type Harness } from '../helpers.js';
import { TestClient } from '../protocol-client.js';
import { joinJobOf } from '../../../coordinator/http/join-job.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function jobWithToken(harness: Harness, body: unknown, expiresInSeconds?: number): Promise<{ jobId: string; token: string }> {
  const jobId = ((await harness.api('POST', '/api/jobs', body)).json as { id: string }).id;
  const { token } = EnrolmentResponseSchema.parse((await harness.api('POST', `/api/jobs/${jobId}/enrolments`, expiresInSeconds === undefined ? {} : { expiresInSeconds })).json);
  return { jobId, token };
}

/** The public route, as the page calls it: no authorization header. */
const lookUp = (harness: Harness, body: unknown) => harness.api('POST', '/join/job', body, null);

describe('POST /join/job', () => {
  it('shows the job of a token (strategy, model, rounds, privacy target) without spending it', async () => {
    h = await startHarness();
    const spec = { ...minimalJob, strategy: 'fedavg', rounds: 4, model: { sha256: SHA, targetModules: ['q_proj'], name: 'tiny-llama', kind: 'llama' }, privacy: { client: { targetEpsilon: 3 }, budget: { epsilon: 8 } } };
    const { jobId, token } = await jobWithToken(h, spec);
    const r = await lookUp(h, { token });
    expect(r.status).toBe(200);
    expect(r.headers.get('cache-control')).toBe('no-store');
    const job = JoinJobSchema.parse(r.json);
    expect(job).toMatchObject({
      jobId,
      status: 'pending',
      strategy: 'fedavg',
      round: 0,
      rounds: 4,
      clientsPerRound: 2,
      rank: 4,
      model: { sha256: SHA, targetModules: ['q_proj'], name: 'tiny-llama', kind: 'llama' },
      privacy: { client: { clip: 1, noiseMultiplier: null, targetEpsilon: 3 }, user: null, budget: { epsilon: 8, delta: 1e-5 }, secureAggregation: false },
      token: { status: 'valid' },
    });
    // Looked up twice, still unspent: a client enrols with it afterwards.
    expect(JoinJobSchema.parse((await lookUp(h, { token })).json).token.status).toBe('valid');
    const client = new TestClient(h.coordinator.url);
    try {
      await client.join({ jobId, token, sha256: SHA, modules: [{ path: 'model.layers.0.self_attn.q_proj', outFeatures: 6, inFeatures: 5 }] });
      // Spent by the enrolment: the page can say so.
      expect(JoinJobSchema.parse((await lookUp(h, { token })).json).token.status).toBe('used');
    } finally {
      client.close();
    }
  });

  it('a job without DP: every privacy part is null; user-level DP is shown with its noise multiplier', async () => {
    h = await startHarness();
    const plain = JoinJobSchema.parse((await lookUp(h, { token: (await jobWithToken(h, minimalJob)).token })).json);
    expect(plain.privacy).toEqual({ client: null, user: null, budget: null, secureAggregation: false });
    const dp = { ...minimalJob, strategy: 'fedavg', privacy: { user: { noiseMultiplier: 1.1 } } };
    const user = JoinJobSchema.parse((await lookUp(h, { token: (await jobWithToken(h, dp)).token })).json);
    expect(user.privacy.user).toEqual({ noiseMultiplier: 1.1, clip: 0.1 });
  });

  it('a bad token gets a clear coded message; a missing one names the field', async () => {
    h = await startHarness();
    const unknown = await lookUp(h, { token: 'not-a-token-of-this-coordinator' });
    expect(unknown.status).toBe(403);
    const body = ErrorBodySchema.parse(unknown.json).error;
    expect(body.code).toBe('FL_ERR_ENROLMENT');
    expect(body.message).toMatch(/not one the coordinator issued.*ask the job owner for a new link/);
    const missing = await lookUp(h, {});
    expect(missing.status).toBe(400);
    expect(ErrorBodySchema.parse(missing.json).error).toMatchObject({ code: 'FL_ERR_INVALID_ARGUMENT', field: 'token' });
    const notJson = await lookUp(h, '{"token":');
    expect(ErrorBodySchema.parse(notJson.json).error.code).toBe('FL_ERR_INVALID_ARGUMENT');
  });

  it('an expired token is reported as expired (joinJobOf at a later clock)', async () => {
    h = await startHarness();
    const { token } = await jobWithToken(h, minimalJob, 60);
    const r = JoinJobSchema.parse((await lookUp(h, { token })).json);
    expect(r.token.status).toBe('valid');
    expect(joinJobOf(h.coordinator.store, token, r.token.expiresAt).token.status).toBe('expired');
  });

  it('is rate-limited per address like /api (429 FL_ERR_RATE_LIMITED)', async () => {
    h = await startHarness({ http: { rateLimit: 2, rateLimitWindowMs: 60_000 } });
    const token = 'x';
    expect((await lookUp(h, { token })).status).toBe(403);
    expect((await lookUp(h, { token })).status).toBe(403);
    const third = await lookUp(h, { token });
    expect(third.status).toBe(429);
    expect(ErrorBodySchema.parse(third.json).error.code).toBe('FL_ERR_RATE_LIMITED');
  });
});
