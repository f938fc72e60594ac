import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store, hashToken, type RoundCommit } from '../../../coordinator/store/store.js';
import { MIGRATIONS } from '../../../coordinator/store/migrations.js';
import { JobSpecSchema } from '../../../shared/protocol/job-spec.js';
import { isFedloraError } from '../../../shared/errors.js';

const spec = JobSpecSchema.parse({
  strategy: 'fedsb', rounds: 2, clientsPerRound: 2, minClients: 2,
  model: { sha256: 'ab'.repeat(32), targetModules: ['q_proj', 'v_proj'] }, rank: 4, seed: 1,
});
const backend = { name: 'wasm', device: 'cpu', selfTest: { passed: true } };
const layout = [{ path: 'model.layers.0.self_attn.q_proj', outFeatures: 8, inFeatures: 8 }];

let dir: string;
let store: Store;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fedlora-store-'));
  store = Store.open(join(dir, 'fedlora.db'));
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

function expectCode(f: () => unknown, code: string, pattern?: RegExp): void {
  try {
    f();
  } catch (e) {
    expect(isFedloraError(e)).toBe(true);
    expect((e as { code: string }).code).toBe(code);
    if (pattern) expect((e as Error).message).toMatch(pattern);
    return;
  }
  throw new Error(`expected ${code}`);
}

function commitOf(jobId: string, round: number, extra: Partial<RoundCommit> = {}): RoundCommit {
  return {
    jobId, round, attempts: 1, participants: ['c1', 'c2'], metrics: { loss: 1 / (round + 1) },
    startedAt: 1000 + round, committedAt: 2000 + round,
    updates: [
      { clientId: 'c1', attempt: 0, status: 'accepted', bytes: 10, examples: 3, receivedAt: 1500 },
      { clientId: 'c3', attempt: 0, status: 'refused', reasonCode: 'FL_ERR_SHAPE_MISMATCH', reasonMessage: 'bad', bytes: 9, receivedAt: 1501 },
      { clientId: 'c2', attempt: 0, status: 'accepted', bytes: 11, examples: 5, receivedAt: 1502 },
    ],
    state: { meta: { round: round + 1 }, payload: new Uint8Array([round + 1, 2, 3]) },
    ledger: JSON.stringify({ spent: round + 1 }),
    nonces: [{ nonce: `n${round}a`, clientId: 'c1' }, { nonce: `n${round}b`, clientId: 'c2' }],
    ...extra,
  };
}

describe('store: opening and migrations', () => {
  it('uses WAL, foreign keys and a busy timeout, and records the migrations', () => {
    expect(store.schemaVersions()).toEqual(MIGRATIONS.map((m) => m.version));
    store.close();
    // Reopening applies nothing twice.
    store = Store.open(join(dir, 'fedlora.db'));
    expect(store.schemaVersions()).toEqual(MIGRATIONS.map((m) => m.version));
  });

  it('refuses a database whose schema is newer than the code', () => {
    store.close();
    const next = MIGRATIONS.length + 1;
    const extra = [...MIGRATIONS, { version: next, name: 'future', sql: 'CREATE TABLE future (x INTEGER)' }];
    Store.open(join(dir, 'fedlora.db'), { migrations: extra }).close();
    expectCode(() => Store.open(join(dir, 'fedlora.db')), 'FL_ERR_STORE', new RegExp(`schema version ${next}, newer`));
    store = Store.open(join(dir, 'fedlora.db'), { migrations: extra });
  });

  it('rolls a failing migration back whole', () => {
    store.close();
    const next = MIGRATIONS.length + 1;
    const bad = [...MIGRATIONS, { version: next, name: 'half', sql: 'CREATE TABLE half (x INTEGER); SELECT * FROM no_such_table;' }];
    expectCode(() => Store.open(join(dir, 'fedlora.db'), { migrations: bad }), 'FL_ERR_STORE', /no_such_table/);
    store = Store.open(join(dir, 'fedlora.db'));
    expect(store.schemaVersions()).toEqual(MIGRATIONS.map((m) => m.version));
    // The half-made table is gone with the rolled-back transaction: the next migration can run cleanly later.
    store.close();
    store = Store.open(join(dir, 'fedlora.db'), { migrations: [...MIGRATIONS, { version: next, name: 'half', sql: 'CREATE TABLE half (x INTEGER);' }] });
    expect(store.schemaVersions()).toEqual([...MIGRATIONS.map((m) => m.version), next]);
  });

  it('migration 2 numbers the tokens of a version-1 database per job in creation order and copies the index to their clients', () => {
    store.close();
    const path = join(dir, 'v1.db');
    const v1 = Store.open(path, { migrations: MIGRATIONS.slice(0, 1) });
    const job = v1.createJob(spec, 1);
    const other = v1.createJob(spec, 1);
    const raw = (v1 as unknown as { db: { prepare(s: string): { run(...a: unknown[]): unknown } } }).db;
    const insert = raw.prepare('INSERT INTO enrolment_tokens (token_hash, job_id, created_at, expires_at) VALUES (?, ?, 0, 10000)');
    for (const [hash, jobId] of [['h0', job.id], ['o0', other.id], ['h1', job.id], ['h2', job.id]]) insert.run(hash, jobId);
    raw.prepare("INSERT INTO clients (id, job_id, sign_public_key, enrolment_index, backend, created_at, last_seen_at) VALUES ('cl_a', ?, 'k', 0, '{}', 0, 0)").run(job.id);
    raw.prepare("UPDATE enrolment_tokens SET used_at = 0, client_id = 'cl_a' WHERE token_hash = 'h2'").run();
    v1.close();
    store = Store.open(path);
    const rows = (store as unknown as { db: { prepare(s: string): { all(): Array<{ token_hash: string; token_index: number }> } } }).db.prepare('SELECT token_hash, token_index FROM enrolment_tokens ORDER BY token_hash').all();
    expect(rows.map((r) => [r.token_hash, r.token_index])).toEqual([['h0', 0], ['h1', 1], ['h2', 2], ['o0', 0]]);
    expect(store.getClient('cl_a')).toMatchObject({ enrolmentIndex: 0, tokenIndex: 2 });
  });

  it('refuses a file that is not a database with FL_ERR_STORE naming it', async () => {
    const { writeFileSync } = await import('node:fs');
    const path = join(dir, 'not-a.db');
    writeFileSync(path, 'hello, this is not sqlite'.repeat(100));
    expectCode(() => Store.open(path), 'FL_ERR_STORE', /not-a\.db/);
  });
});

describe('store: jobs, tokens, clients', () => {
  it('creates, lists and reads jobs with their spec', () => {
    const a = store.createJob(spec, 1);
    const b = store.createJob({ ...spec, rounds: 5 }, 2);
    expect(a.id).toMatch(/^job_[A-Za-z0-9_-]{16}$/);
    expect(store.getJob(a.id)).toMatchObject({ status: 'pending', round: 0, reason: null, layout: null, spec });
    expect(store.listJobs().map((j) => j.id)).toEqual([b.id, a.id]);
    expectCode(() => store.requireJob('job_nope'), 'FL_ERR_NOT_FOUND', /job_nope/);
  });

  it('stores tokens hashed, spends them once, and refuses expired or foreign ones', () => {
    const job = store.createJob(spec);
    const other = store.createJob(spec);
    const token = store.createEnrolmentToken(job.id, 10_000, 0);
    expect(token.length).toBeGreaterThanOrEqual(43);
    // A byte-for-byte search of the database file for the token finds nothing; its hash is there.
    const raw = (store as unknown as { db: { prepare(s: string): { all(): Array<{ token_hash: string }> } } }).db.prepare('SELECT token_hash FROM enrolment_tokens').all();
    expect(raw.map((r) => r.token_hash)).toEqual([hashToken(token)]);
    expectCode(() => store.enrolClient(other.id, token, { signPublicKey: 'k1', backend }, 5), 'FL_ERR_ENROLMENT', /not one of job/);
    const c = store.enrolClient(job.id, token, { signPublicKey: 'k1', backend, agent: 'test' }, 5);
    expect(c).toMatchObject({ jobId: job.id, signPublicKey: 'k1', enrolmentIndex: 0, backend, agent: 'test' });
    expectCode(() => store.enrolClient(job.id, token, { signPublicKey: 'k2', backend }, 6), 'FL_ERR_ENROLMENT', /already used/);
    const late = store.createEnrolmentToken(job.id, 10, 0);
    expectCode(() => store.enrolClient(job.id, late, { signPublicKey: 'k3', backend }, 10), 'FL_ERR_ENROLMENT', /expired/);
    const dup = store.createEnrolmentToken(job.id, 10_000, 0);
    expectCode(() => store.enrolClient(job.id, dup, { signPublicKey: 'k1', backend }, 7), 'FL_ERR_ENROLMENT', /already enrolled/);
    // The failed enrolment left the token unspent.
    expect(store.enrolClient(job.id, dup, { signPublicKey: 'k4', backend }, 8).enrolmentIndex).toBe(1);
    // Its token index is its token's creation index in the job (0: token, 1: late, 2: dup), not the enrolment order.
    expect(store.clientsOfJob(job.id).map((x) => x.tokenIndex)).toEqual([0, 2]);
    expect(store.clientByKey(job.id, 'k4')?.id).toBeDefined();
    expect(store.clientsOfJob(job.id).map((x) => x.signPublicKey)).toEqual(['k1', 'k4']);
  });
});

describe('store: rounds', () => {
  it('commits a round atomically and completes the job after its last round', () => {
    const job = store.createJob(spec);
    store.startJob(job.id, layout, { meta: { round: 0 }, payload: new Uint8Array([9]) }, 5);
    expect(store.getJob(job.id)).toMatchObject({ status: 'running', layout });
    expect(store.latestState(job.id)).toEqual({ round: 0, meta: { round: 0 }, payload: new Uint8Array([9]) });

    const after0 = store.commitRound(commitOf(job.id, 0));
    expect(after0).toMatchObject({ round: 1, status: 'running' });
    expect(store.rounds(job.id)).toEqual([
      { jobId: job.id, round: 0, attempts: 1, participants: ['c1', 'c2'], metrics: { loss: 1 }, startedAt: 1000, committedAt: 2000, accepted: 2, refused: 1 },
    ]);
    expect(store.updates(job.id, 0).map((u) => [u.clientId, u.status, u.reasonCode])).toEqual([
      ['c1', 'accepted', undefined], ['c3', 'refused', 'FL_ERR_SHAPE_MISMATCH'], ['c2', 'accepted', undefined],
    ]);
    expect(store.latestState(job.id)).toEqual({ round: 1, meta: { round: 1 }, payload: new Uint8Array([1, 2, 3]) });
    expect(store.ledger(job.id)).toBe('{"spent":1}');
    expect(store.isNonceUsed(job.id, 'n0a')).toBe(true);
    expect(store.isNonceUsed(job.id, 'n1a')).toBe(false);

    expect(store.commitRound(commitOf(job.id, 1))).toMatchObject({ round: 2, status: 'completed' });
    expect(store.activeJobs()).toEqual([]);
  });

  it('refuses a stale or repeated commit and writes nothing of it', () => {
    const job = store.createJob({ ...spec, rounds: 5 });
    store.startJob(job.id, layout, { meta: {}, payload: new Uint8Array(1) });
    store.commitRound(commitOf(job.id, 0));
    expectCode(() => store.commitRound(commitOf(job.id, 0)), 'FL_ERR_ROUND_STATE', /expects round 1/);
    expectCode(() => store.commitRound(commitOf(job.id, 2)), 'FL_ERR_ROUND_STATE', /expects round 1/);
    expect(store.rounds(job.id)).toHaveLength(1);
    expect(store.updates(job.id)).toHaveLength(3);
  });

  it('rolls the whole round back when one part fails (a nonce reused)', () => {
    const job = store.createJob({ ...spec, rounds: 5 });
    store.startJob(job.id, layout, { meta: {}, payload: new Uint8Array(1) });
    store.commitRound(commitOf(job.id, 0));
    // Round 1 reuses round 0's nonce: the primary key refuses it, so the round record, updates,
    // state and ledger written before it in the transaction must all be gone.
    expect(() => store.commitRound(commitOf(job.id, 1, { nonces: [{ nonce: 'n0a', clientId: 'c1' }] }))).toThrow(/UNIQUE/);
    expect(store.getJob(job.id)?.round).toBe(1);
    expect(store.rounds(job.id).map((r) => r.round)).toEqual([0]);
    expect(store.updates(job.id, 1)).toEqual([]);
    expect(store.latestState(job.id)?.round).toBe(1);
    expect(store.ledger(job.id)).toBe('{"spent":1}');
  });

  it('refuses to start a job twice and to commit on a job that is not running', () => {
    const job = store.createJob(spec);
    expectCode(() => store.commitRound(commitOf(job.id, 0)), 'FL_ERR_ROUND_STATE', /pending/);
    store.startJob(job.id, layout, { meta: {}, payload: new Uint8Array(1) });
    expectCode(() => store.startJob(job.id, layout, { meta: {}, payload: new Uint8Array(1) }), 'FL_ERR_ROUND_STATE');
    store.setJobStatus(job.id, 'failed', 'too few clients');
    expect(store.getJob(job.id)).toMatchObject({ status: 'failed', reason: 'too few clients' });
    expectCode(() => store.commitRound(commitOf(job.id, 0)), 'FL_ERR_ROUND_STATE', /failed/);
  });

  it('numbers attempts durably and restarts them at 0 for the next round', () => {
    const job = store.createJob({ ...spec, rounds: 5 });
    store.startJob(job.id, layout, { meta: {}, payload: new Uint8Array(1) });
    expect(store.beginAttempt(job.id)).toBe(0);
    expect(store.beginAttempt(job.id)).toBe(1);
    store.close();
    store = Store.open(join(dir, 'fedlora.db'));
    expect(store.beginAttempt(job.id)).toBe(2);
    store.commitRound(commitOf(job.id, 0, { attempts: 3 }));
    expect(store.getJob(job.id)?.attempt).toBe(-1);
    expect(store.beginAttempt(job.id)).toBe(0);
  });

  it('records a retried attempt for the audit trail', () => {
    const job = store.createJob(spec);
    store.recordUpdates(job.id, 0, [{ clientId: null, attempt: 0, status: 'refused', reasonCode: 'FL_ERR_ENVELOPE_SIGNATURE', bytes: 5, receivedAt: 1 }]);
    expect(store.updates(job.id)).toEqual([{ round: 0, attempt: 0, clientId: null, status: 'refused', reasonCode: 'FL_ERR_ENVELOPE_SIGNATURE', bytes: 5, receivedAt: 1 }]);
  });
});
