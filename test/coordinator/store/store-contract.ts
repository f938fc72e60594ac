/**
 * The Store contract: one suite every implementation passes (SQLite in sqlite-store.test.ts,
 * PostgreSQL in postgres-store.test.ts). "Two nodes" are two Store instances opened on the same
 * location, each with its own connection(s).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { openStore } from '../../../coordinator/store/open-store.js';
import { hashToken, type RoundCommit, type Store } from '../../../coordinator/store/store-api.js';
import type { Migration } from '../../../coordinator/store/migrations.js';
import { JobSpecSchema } from '../../../shared/protocol/job-spec.js';
import { isFedloraError } from '../../../shared/errors.js';

export interface StoreBackend {
  readonly name: string;
  /** A location no store has used yet (a new file path, a new schema). */
  fresh(): string;
  /** The backend's own migration list. */
  readonly migrations: readonly Migration[];
  /** Raw SQL on a location, for what the Store does not expose (how tokens are stored). */
  raw(location: string, sql: string): Promise<Array<Record<string, unknown>>>;
  /** A migration that fails after creating a table, in this backend's SQL. */
  readonly failingSql: string;
}

const CHILD = join(import.meta.dirname, 'fixtures', 'commit-rounds-child.ts');

export const spec = JobSpecSchema.parse({
  strategy: 'fedsb', rounds: 2, clientsPerRound: 2, minClients: 2,
  model: { sha256: 'ab'.repeat(32), targetModules: ['q_proj', 'v_proj'] }, rank: 4, seed: 1,
});
const backend = { name: 'wasm', device: 'cpu', selfTest: { passed: true } };
const layout = [{ path: 'model.layers.0.self_attn.q_proj', outFeatures: 8, inFeatures: 8 }];

export async function expectCode(p: Promise<unknown> | (() => Promise<unknown>), code: string, pattern?: RegExp): Promise<void> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    expect(isFedloraError(e), String(e)).toBe(true);
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

/** Exactly one of the settled results is fulfilled; the others are rejected with `code`. */
function exactlyOneWins<T>(results: PromiseSettledResult<T>[], code: string): T {
  const won = results.filter((r): r is PromiseFulfilledResult<T> => r.status === 'fulfilled');
  const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  expect(won).toHaveLength(1);
  for (const l of lost) expect((l.reason as { code?: string }).code, String(l.reason)).toBe(code);
  return won[0]!.value;
}

export function storeContract(b: StoreBackend): void {
  describe(`Store contract: ${b.name}`, () => {
    const opened: Store[] = [];
    async function open(location: string, migrations?: readonly Migration[]): Promise<Store> {
      const s = await openStore(location, migrations === undefined ? {} : { migrations });
      opened.push(s);
      return s;
    }
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close();
    });

    describe('migrations', () => {
      it('a fresh store records every migration; reopening applies nothing and keeps the data', async () => {
        const at = b.fresh();
        const store = await open(at);
        expect(await store.schemaVersions()).toEqual(b.migrations.map((m) => m.version));
        const job = await store.createJob(spec, 1);
        const before = await b.raw(at, 'SELECT version, applied_at FROM schema_migrations ORDER BY version');
        await store.close();
        const again = await open(at);
        expect(await again.schemaVersions()).toEqual(b.migrations.map((m) => m.version));
        expect(await b.raw(at, 'SELECT version, applied_at FROM schema_migrations ORDER BY version')).toEqual(before);
        expect((await again.requireJob(job.id)).spec).toEqual(spec);
      });

      it('two stores opening one fresh location together migrate it once', async () => {
        const at = b.fresh();
        const [x, y] = await Promise.all([open(at), open(at)]);
        expect(await x.schemaVersions()).toEqual(b.migrations.map((m) => m.version));
        expect(await y.schemaVersions()).toEqual(b.migrations.map((m) => m.version));
        expect(await b.raw(at, 'SELECT CAST(COUNT(*) AS INTEGER) AS n FROM schema_migrations')).toEqual([{ n: b.migrations.length }]);
      });

      it('refuses a database whose schema is newer than the code', async () => {
        const at = b.fresh();
        const next = b.migrations.length + 1;
        await (await open(at, [...b.migrations, { version: next, name: 'future', sql: 'CREATE TABLE future (x INTEGER)' }])).close();
        await expectCode(open(at), 'FL_ERR_STORE', new RegExp(`schema version ${next}, newer`));
      });

      it('rolls a failing migration back whole', async () => {
        const at = b.fresh();
        await (await open(at)).close();
        const next = b.migrations.length + 1;
        await expectCode(open(at, [...b.migrations, { version: next, name: 'half', sql: b.failingSql }]), 'FL_ERR_STORE', /no_such_table/);
        expect(await (await open(at)).schemaVersions()).toEqual(b.migrations.map((m) => m.version));
        // The half-made table went with the rolled-back transaction: the next migration can create it.
        const fixed = await open(at, [...b.migrations, { version: next, name: 'half', sql: 'CREATE TABLE half (x INTEGER);' }]);
        expect(await fixed.schemaVersions()).toEqual([...b.migrations.map((m) => m.version), next]);
      });
    });

    describe('jobs, tokens, clients', () => {
      it('creates, lists and reads jobs with their spec', async () => {
        const store = await open(b.fresh());
        const a = await store.createJob(spec, 1);
        const c = await store.createJob({ ...spec, rounds: 5 }, 2);
        const d = await store.createJob(spec, 2);
        expect(a.id).toMatch(/^job_[A-Za-z0-9_-]{16}$/);
        expect(await store.getJob(a.id)).toMatchObject({ status: 'pending', round: 0, attempt: -1, reason: null, layout: null, spec, createdAt: 1 });
        expect(await store.getJob('job_nope')).toBeNull();
        // Newest first; equal times in creation order reversed.
        expect((await store.listJobs()).map((j) => j.id)).toEqual([d.id, c.id, a.id]);
        expect((await store.activeJobs()).map((j) => j.id)).toEqual([a.id, c.id, d.id]);
        await expectCode(store.requireJob('job_nope'), 'FL_ERR_NOT_FOUND', /job_nope/);
        await expectCode(store.setJobStatus('job_nope', 'failed'), 'FL_ERR_NOT_FOUND', /job_nope/);
        await store.setJobStatus(c.id, 'failed', 'too few clients', 9);
        expect(await store.getJob(c.id)).toMatchObject({ status: 'failed', reason: 'too few clients', updatedAt: 9 });
        expect((await store.activeJobs()).map((j) => j.id)).toEqual([a.id, d.id]);
      });

      it('stores tokens hashed, spends them once, and refuses expired or foreign ones', async () => {
        const at = b.fresh();
        const store = await open(at);
        const job = await store.createJob(spec);
        const other = await store.createJob(spec);
        const token = await store.createEnrolmentToken(job.id, 10_000, 0);
        expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
        // Only the token's hash is in the database.
        expect((await b.raw(at, 'SELECT token_hash FROM enrolment_tokens')).map((r) => r.token_hash)).toEqual([hashToken(token)]);
        expect(await store.enrolmentTokenJob(token)).toEqual({ jobId: job.id, tokenIndex: 0 });
        expect(await store.enrolmentTokenInfo(token)).toEqual({ jobId: job.id, expiresAt: 10_000, used: false });
        expect(await store.enrolmentTokenJob('nope')).toBeNull();
        await expectCode(store.enrolClient(other.id, token, { signPublicKey: 'k1', backend }, 5), 'FL_ERR_ENROLMENT', /not one of job/);
        const c = await store.enrolClient(job.id, token, { signPublicKey: 'k1', backend, agent: 'test' }, 5);
        expect(c).toMatchObject({ jobId: job.id, signPublicKey: 'k1', boxPublicKey: null, enrolmentIndex: 0, tokenIndex: 0, backend, agent: 'test', createdAt: 5, lastSeenAt: 5 });
        expect(await store.enrolmentTokenInfo(token)).toMatchObject({ used: true });
        await expectCode(store.enrolClient(job.id, token, { signPublicKey: 'k2', backend }, 6), 'FL_ERR_ENROLMENT', /already used/);
        const late = await store.createEnrolmentToken(job.id, 10, 0);
        await expectCode(store.enrolClient(job.id, late, { signPublicKey: 'k3', backend }, 10), 'FL_ERR_ENROLMENT', /expired/);
        const dup = await store.createEnrolmentToken(job.id, 10_000, 0);
        await expectCode(store.enrolClient(job.id, dup, { signPublicKey: 'k1', backend }, 7), 'FL_ERR_ENROLMENT', /already enrolled/);
        // The failed enrolment left the token unspent.
        expect((await store.enrolClient(job.id, dup, { signPublicKey: 'k4', boxPublicKey: 'x4', backend }, 8)).enrolmentIndex).toBe(1);
        // The token index is the token's creation index in the job (0: token, 1: late, 2: dup), not the enrolment order.
        expect((await store.clientsOfJob(job.id)).map((x) => [x.signPublicKey, x.tokenIndex])).toEqual([['k1', 0], ['k4', 2]]);
        expect(await store.clientByKey(job.id, 'k4')).toMatchObject({ boxPublicKey: 'x4', enrolmentIndex: 1 });
        expect(await store.clientByKey(other.id, 'k4')).toBeNull();
      });

      it('records a returning client (touchClient) and reads it back by id', async () => {
        const store = await open(b.fresh());
        const job = await store.createJob(spec);
        const c = await store.enrolClient(job.id, await store.createEnrolmentToken(job.id, 10_000, 0), { signPublicKey: 'k', backend }, 5);
        const webgpu = { name: 'webgpu', device: 'gpu', selfTest: { passed: true } };
        await store.touchClient(c.id, webgpu, 'agent/2', 77);
        expect(await store.getClient(c.id)).toMatchObject({ backend: webgpu, agent: 'agent/2', lastSeenAt: 77, createdAt: 5 });
        expect(await store.getClient('cl_nope')).toBeNull();
      });

      it('an enrolment token claimed by two nodes at once enrols exactly one client', async () => {
        const at = b.fresh();
        const [x, y] = [await open(at), await open(at)];
        const job = await x.createJob(spec);
        for (let i = 0; i < 5; i++) {
          const token = await x.createEnrolmentToken(job.id, Date.now() + 60_000);
          const results = await Promise.allSettled([
            x.enrolClient(job.id, token, { signPublicKey: `x${i}`, backend }),
            y.enrolClient(job.id, token, { signPublicKey: `y${i}`, backend }),
          ]);
          exactlyOneWins(results, 'FL_ERR_ENROLMENT');
        }
        const clients = await y.clientsOfJob(job.id);
        expect(clients).toHaveLength(5);
        expect(clients.map((c) => c.enrolmentIndex)).toEqual([0, 1, 2, 3, 4]);
        expect(clients.map((c) => c.tokenIndex)).toEqual([0, 1, 2, 3, 4]);
      });

      it('two nodes creating tokens and enrolling at once number them without gaps or repeats', async () => {
        const at = b.fresh();
        const [x, y] = [await open(at), await open(at)];
        const job = await x.createJob(spec);
        const tokens = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? x : y).createEnrolmentToken(job.id, Date.now() + 60_000)));
        const indices = await Promise.all(tokens.map(async (t) => (await x.enrolmentTokenJob(t))!.tokenIndex));
        expect([...indices].sort((p, q) => p - q)).toEqual(Array.from({ length: 12 }, (_, i) => i));
        const clients = await Promise.all(tokens.map((t, i) => (i % 2 === 0 ? y : x).enrolClient(job.id, t, { signPublicKey: `k${i}`, backend })));
        expect(clients.map((c) => c.enrolmentIndex).sort((p, q) => p - q)).toEqual(Array.from({ length: 12 }, (_, i) => i));
        expect(clients.map((c) => c.tokenIndex)).toEqual(indices);
      });
    });

    describe('rounds', () => {
      it('commits a round atomically and completes the job after its last round', async () => {
        const store = await open(b.fresh());
        const job = await store.createJob(spec);
        expect(await store.latestState(job.id)).toBeNull();
        await store.startJob(job.id, layout, { meta: { round: 0 }, payload: new Uint8Array([9]) }, 5);
        expect(await store.getJob(job.id)).toMatchObject({ status: 'running', layout });
        expect(await store.latestState(job.id)).toEqual({ round: 0, meta: { round: 0 }, payload: new Uint8Array([9]) });
        expect(await store.ledger(job.id)).toBeNull();

        const after0 = await store.commitRound(commitOf(job.id, 0));
        expect(after0).toMatchObject({ round: 1, attempt: -1, status: 'running', updatedAt: 2000 });
        expect(await store.rounds(job.id)).toEqual([
          { jobId: job.id, round: 0, attempts: 1, participants: ['c1', 'c2'], metrics: { loss: 1 }, startedAt: 1000, committedAt: 2000, accepted: 2, refused: 1 },
        ]);
        expect(await store.updates(job.id, 0)).toEqual([
          { round: 0, attempt: 0, clientId: 'c1', status: 'accepted', bytes: 10, examples: 3, receivedAt: 1500 },
          { round: 0, attempt: 0, clientId: 'c3', status: 'refused', reasonCode: 'FL_ERR_SHAPE_MISMATCH', reasonMessage: 'bad', bytes: 9, receivedAt: 1501 },
          { round: 0, attempt: 0, clientId: 'c2', status: 'accepted', bytes: 11, examples: 5, receivedAt: 1502 },
        ]);
        expect(await store.latestState(job.id)).toEqual({ round: 1, meta: { round: 1 }, payload: new Uint8Array([1, 2, 3]) });
        expect(await store.ledger(job.id)).toBe('{"spent":1}');
        expect(await store.isNonceUsed(job.id, 'n0a')).toBe(true);
        expect(await store.isNonceUsed(job.id, 'n1a')).toBe(false);

        expect(await store.commitRound(commitOf(job.id, 1))).toMatchObject({ round: 2, status: 'completed' });
        expect(await store.activeJobs()).toEqual([]);
        expect(await store.refusalsByReason(job.id)).toEqual({ FL_ERR_SHAPE_MISMATCH: 2 });
      });

      it('refuses a stale or repeated commit and writes nothing of it', async () => {
        const store = await open(b.fresh());
        const job = await store.createJob({ ...spec, rounds: 5 });
        await store.startJob(job.id, layout, { meta: {}, payload: new Uint8Array(1) });
        await store.commitRound(commitOf(job.id, 0));
        await expectCode(store.commitRound(commitOf(job.id, 0)), 'FL_ERR_ROUND_STATE', /expects round 1/);
        await expectCode(store.commitRound(commitOf(job.id, 2)), 'FL_ERR_ROUND_STATE', /expects round 1/);
        expect(await store.rounds(job.id)).toHaveLength(1);
        expect(await store.updates(job.id)).toHaveLength(3);
      });

      it('rolls the whole round back when one part fails (a nonce of an earlier round reused)', async () => {
        const store = await open(b.fresh());
        const job = await store.createJob({ ...spec, rounds: 5 });
        await store.startJob(job.id, layout, { meta: {}, payload: new Uint8Array(1) });
        await store.commitRound(commitOf(job.id, 0));
        // Round 1 reuses round 0's nonce, written last in the transaction: the round record,
        // updates, state and ledger written before it must all be gone.
        await expectCode(store.commitRound(commitOf(job.id, 1, { nonces: [{ nonce: 'n1a', clientId: 'c1' }, { nonce: 'n0a', clientId: 'c1' }] })), 'FL_ERR_ENVELOPE_REPLAY', /n0a/);
        expect(await store.getJob(job.id)).toMatchObject({ round: 1, status: 'running' });
        expect((await store.rounds(job.id)).map((r) => r.round)).toEqual([0]);
        expect(await store.updates(job.id, 1)).toEqual([]);
        expect((await store.latestState(job.id))?.round).toBe(1);
        expect(await store.ledger(job.id)).toBe('{"spent":1}');
        expect(await store.isNonceUsed(job.id, 'n1a')).toBe(false);
        // The same round then commits cleanly.
        expect((await store.commitRound(commitOf(job.id, 1))).round).toBe(2);
      });

      it('two nodes committing the same round at once: one commits, the other is refused and writes nothing', async () => {
        const at = b.fresh();
        const [x, y] = [await open(at), await open(at)];
        const job = await x.createJob({ ...spec, rounds: 5 });
        await x.startJob(job.id, layout, { meta: {}, payload: new Uint8Array(1) });
        for (let round = 0; round < 3; round++) {
          const results = await Promise.allSettled([
            x.commitRound(commitOf(job.id, round, { metrics: { node: 0 }, nonces: [{ nonce: `x${round}`, clientId: 'c1' }] })),
            y.commitRound(commitOf(job.id, round, { metrics: { node: 1 }, nonces: [{ nonce: `y${round}`, clientId: 'c1' }] })),
          ]);
          const winner = exactlyOneWins(results, 'FL_ERR_ROUND_STATE');
          expect(winner.round).toBe(round + 1);
        }
        const rounds = await y.rounds(job.id);
        expect(rounds.map((r) => r.round)).toEqual([0, 1, 2]);
        expect(await x.updates(job.id)).toHaveLength(9);
        // Only the winner's nonce of each round is there.
        for (const r of rounds) {
          const node = r.metrics.node === 0 ? 'x' : 'y';
          const loser = node === 'x' ? 'y' : 'x';
          expect(await y.isNonceUsed(job.id, `${node}${r.round}`)).toBe(true);
          expect(await y.isNonceUsed(job.id, `${loser}${r.round}`)).toBe(false);
        }
      });

      it('refuses to start a job twice and to commit on a job that is not running', async () => {
        const store = await open(b.fresh());
        const job = await store.createJob(spec);
        await expectCode(store.commitRound(commitOf(job.id, 0)), 'FL_ERR_ROUND_STATE', /pending/);
        await expectCode(store.startJob('job_nope', layout, { meta: {}, payload: new Uint8Array(1) }), 'FL_ERR_NOT_FOUND');
        await store.startJob(job.id, layout, { meta: {}, payload: new Uint8Array(1) }, 3, '{"init":1}');
        expect(await store.ledger(job.id)).toBe('{"init":1}');
        await expectCode(store.startJob(job.id, layout, { meta: {}, payload: new Uint8Array(1) }), 'FL_ERR_ROUND_STATE');
        await store.setJobStatus(job.id, 'failed', 'too few clients');
        await expectCode(store.commitRound(commitOf(job.id, 0)), 'FL_ERR_ROUND_STATE', /failed/);
      });

      it('numbers attempts durably, distinctly across two nodes, and restarts them at 0 for the next round', async () => {
        const at = b.fresh();
        let store = await open(at);
        const job = await store.createJob({ ...spec, rounds: 5 });
        await store.startJob(job.id, layout, { meta: {}, payload: new Uint8Array(1) });
        expect(await store.beginAttempt(job.id)).toBe(0);
        expect(await store.beginAttempt(job.id)).toBe(1);
        await store.close();
        store = await open(at);
        expect(await store.beginAttempt(job.id)).toBe(2);
        const other = await open(at);
        const numbers = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? store : other).beginAttempt(job.id)));
        expect([...numbers].sort((p, q) => p - q)).toEqual([3, 4, 5, 6, 7, 8, 9, 10]);
        await store.commitRound(commitOf(job.id, 0, { attempts: 11 }));
        expect((await store.getJob(job.id))?.attempt).toBe(-1);
        expect(await store.beginAttempt(job.id)).toBe(0);
        await expectCode(store.beginAttempt('job_nope'), 'FL_ERR_NOT_FOUND');
      });
    });

    describe('updates', () => {
      it('records a retried attempt for the audit trail, in arrival order, by round', async () => {
        const store = await open(b.fresh());
        const job = await store.createJob(spec);
        await store.recordUpdates(job.id, 0, [{ clientId: null, attempt: 0, status: 'refused', reasonCode: 'FL_ERR_ENVELOPE_SIGNATURE', bytes: 5, receivedAt: 1 }]);
        await store.recordUpdates(job.id, 0, []);
        const many = Array.from({ length: 50 }, (_, i) => ({ clientId: `c${i}`, attempt: 1, status: 'accepted' as const, bytes: 2 ** 40 + i, examples: i, receivedAt: 2 ** 41 + i }));
        await store.recordUpdates(job.id, 1, many);
        expect(await store.updates(job.id, 0)).toEqual([{ round: 0, attempt: 0, clientId: null, status: 'refused', reasonCode: 'FL_ERR_ENVELOPE_SIGNATURE', bytes: 5, receivedAt: 1 }]);
        // Large byte counts and epoch-ms times come back as the same numbers (BIGINT on PostgreSQL).
        expect(await store.updates(job.id, 1)).toEqual(many.map((u) => ({ ...u, round: 1 })));
        expect(await store.updates(job.id)).toHaveLength(51);
        expect(await store.refusalsByReason(job.id)).toEqual({ FL_ERR_ENVELOPE_SIGNATURE: 1 });
      });

      it('two nodes recording updates at once keep every record', async () => {
        const at = b.fresh();
        const [x, y] = [await open(at), await open(at)];
        const job = await x.createJob(spec);
        const batch = (node: string, k: number) => Array.from({ length: 10 }, (_, i) => ({ clientId: `${node}${k}-${i}`, attempt: 0, status: 'accepted' as const, bytes: i, receivedAt: i }));
        await Promise.all(Array.from({ length: 10 }, (_, k) => (k % 2 === 0 ? x : y).recordUpdates(job.id, 0, batch(k % 2 === 0 ? 'x' : 'y', k))));
        const stored = await x.updates(job.id, 0);
        expect(stored).toHaveLength(100);
        expect(new Set(stored.map((u) => u.clientId)).size).toBe(100);
        // Each batch keeps its own order (concurrent batches may interleave on PostgreSQL).
        for (let k = 0; k < 10; k++) {
          const prefix = `${k % 2 === 0 ? 'x' : 'y'}${k}-`;
          expect(stored.filter((u) => u.clientId!.startsWith(prefix)).map((u) => u.bytes)).toEqual(Array.from({ length: 10 }, (_, i) => i));
        }
      });
    });

    describe('nonces', () => {
      it('a nonce is used once; commitRound accepts the same client and round, refuses any other', async () => {
        const store = await open(b.fresh());
        const job = await store.createJob({ ...spec, rounds: 5 });
        await store.startJob(job.id, layout, { meta: {}, payload: new Uint8Array(1) });
        expect(await store.useNonce(job.id, 'n0a', 'c1', 0)).toBe(true);
        expect(await store.useNonce(job.id, 'n0a', 'c1', 0)).toBe(false);
        expect(await store.useNonce(job.id, 'n0a', 'c2', 0)).toBe(false);
        expect(await store.isNonceUsed(job.id, 'n0a')).toBe(true);
        expect(await store.useNonce(job.id, 'other', 'c2', 0)).toBe(true);
        // Claimed by c1 for round 0: round 0's commit by c1 takes it.
        await store.commitRound(commitOf(job.id, 0));
        // Claimed by c2: a commit that names c1 with it is a replay.
        await expectCode(store.commitRound(commitOf(job.id, 1, { nonces: [{ nonce: 'other', clientId: 'c1' }] })), 'FL_ERR_ENVELOPE_REPLAY');
        expect((await store.getJob(job.id))?.round).toBe(1);
      });

      it('two nodes claiming the same nonces at once: each nonce goes to exactly one', async () => {
        const at = b.fresh();
        const [x, y] = [await open(at), await open(at)];
        const job = await x.createJob(spec);
        const claims = await Promise.all(Array.from({ length: 20 }, (_, i) => Promise.all([
          x.useNonce(job.id, `n${i}`, 'c1', 0),
          y.useNonce(job.id, `n${i}`, 'c1', 0),
        ])));
        for (const [p, q] of claims) expect(Number(p) + Number(q)).toBe(1);
      });
    });

    it('a process killed with SIGKILL mid-commit leaves every committed round and no partial one', async () => {
      const at = b.fresh();
      const child = spawn(process.execPath, ['--import', 'tsx', CHILD, at], { stdio: ['ignore', 'pipe', 'inherit'] });
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
      let lastReported = -1;
      let jobId = '';
      // Killed as soon as it reports its 8th commit: it is then inside the next round's
      // transaction (writing 1 MiB of state), the moment a torn write would show.
      await new Promise<void>((resolve, reject) => {
        child.on('exit', (code) => reject(new Error(`child exited (${code}) before its 8th commit`)));
        createInterface({ input: child.stdout! }).on('line', (line) => {
          const [, round, id] = line.split(' ');
          lastReported = Number(round);
          jobId = id!;
          if (lastReported === 7) {
            child.kill('SIGKILL');
            resolve();
          }
        });
      });
      expect(await exited).toBe('SIGKILL');

      const store = await open(at);
      const job = await store.requireJob(jobId);
      const rounds = await store.rounds(jobId);
      // Every reported round is there, possibly one more (committed before the kill landed, not yet printed).
      expect(job.round).toBeGreaterThanOrEqual(lastReported + 1);
      expect(job.round).toBeLessThanOrEqual(lastReported + 2);
      expect(rounds.map((r) => r.round)).toEqual(Array.from({ length: job.round }, (_, i) => i));
      for (const r of rounds) {
        expect(r.accepted).toBe(20);
        expect(await store.updates(jobId, r.round)).toHaveLength(20);
      }
      // Nothing of the round that was in flight.
      expect(await store.updates(jobId, job.round)).toEqual([]);
      const state = (await store.latestState(jobId))!;
      expect(state.round).toBe(job.round);
      expect(state.meta).toEqual({ round: job.round });
      expect(state.payload.length).toBe(1 << 20);
      expect(state.payload.every((v) => v === (job.round - 1) % 251)).toBe(true);
      expect(JSON.parse((await store.ledger(jobId))!)).toEqual({ rounds: job.round });
      expect(await store.isNonceUsed(jobId, `${job.round - 1}-c19`)).toBe(true);
      expect(await store.isNonceUsed(jobId, `${job.round}-c0`)).toBe(false);
      // The store goes on from there.
      await store.beginAttempt(jobId);
    });
  });
}
