/**
 * The Store on PostgreSQL (the `pg` driver, a connection Pool): one database shared by several
 * coordinator nodes. Each method that reads and then writes runs in one transaction that first
 * locks the job's row (`SELECT ... FOR UPDATE`), so two nodes committing the same round, or
 * claiming the same enrolment token, serialise there and the second sees the first's result.
 * A killed node's open transaction is rolled back by the server: a round is committed whole or not
 * at all, as on SQLite.
 *
 * Location: `postgres://user:password@host:port/database`, optionally `?schema=name` to keep
 * fedlora's tables in their own schema (created if missing; tests use one per file).
 */
import pg from 'pg';
import { FedloraError, isFedloraError } from '../../shared/errors.js';
import type { JobSpec, ModuleShape } from '../../shared/protocol/job-spec.js';
import type { BackendInfo } from '../../shared/protocol/events.js';
import type { JobStatus } from '../../shared/protocol/http.js';
import type { Migration } from './migrations.js';
import { POSTGRES_MIGRATIONS } from './postgres-migrations.js';
import { LEASE_FENCE_SQL } from '../cluster/job-lease.js';
import {
  checkCommit, checkToken, keyEnrolled, notFound, replayError, toClient, toJob, toRound, toUpdate,
  type ClientRow, type JobRow, type RoundRow, type TokenRow, type UpdateRow,
} from './rows.js';
import {
  hashToken, newId, newToken,
  type ClientRecord, type JobRecord, type NewClient, type RoundCommit, type RoundRecord, type StateBlob, type Store, type StoredState,
  type StoredUpdate, type UpdateRecord,
} from './store-api.js';

/** Advisory lock key held while migrating ('fedl' in ASCII): one node migrates, the others wait. */
const MIGRATION_LOCK = 0x6665646c;

const INT8_OID = 20;
/** BIGINT (epoch ms, counts) as a JS number: every value we store is below 2^53. */
const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as pg.CustomTypesConfig['getTypeParser'],
};

export interface PostgresOpenOptions {
  /** Migrations to apply (tests pass extra ones). @default POSTGRES_MIGRATIONS */
  migrations?: readonly Migration[];
  /** Connections in the pool. @default 10 */
  poolSize?: number;
}

/** The location without its password, for logs and messages. */
export function redactLocation(location: string): string {
  try {
    const url = new URL(location);
    if (url.password !== '') url.password = '***';
    return url.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

/** Splits `?schema=` off a location: the pg connection string and the schema, if any. */
function parseLocation(location: string): { connectionString: string; schema: string | null } {
  let url: URL;
  try {
    url = new URL(location);
  } catch (e) {
    throw new FedloraError('FL_ERR_STORE', `the store location ${redactLocation(location)} is not a URL`, undefined, { cause: e });
  }
  const schema = url.searchParams.get('schema');
  url.searchParams.delete('schema');
  if (schema !== null && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new FedloraError('FL_ERR_STORE', `schema '${schema}' in the store location must be lower-case letters, digits and _, starting with a letter or _`);
  }
  return { connectionString: url.toString(), schema };
}

function storeError(location: string, e: unknown): FedloraError {
  if (isFedloraError(e)) return e;
  return new FedloraError('FL_ERR_STORE', `database ${redactLocation(location)}: ${(e as Error).message}`, undefined, { cause: e });
}

/**
 * The fence of a cluster node's commit (coordinator/cluster/job-lease.ts): the lease row, read
 * FOR SHARE in the commit's transaction, must still name this node and epoch; a node taking the
 * lease meanwhile waits for this transaction, so a commit either lands before the takeover or not at all.
 */
async function checkLease(c: pg.PoolClient, jobId: string, lease: { nodeId: string; epoch: number }): Promise<void> {
  const { rows } = await c.query(LEASE_FENCE_SQL, [jobId, lease.nodeId, lease.epoch]);
  if (rows.length === 0) {
    throw new FedloraError('FL_ERR_ROUND_STATE', `node '${lease.nodeId}' no longer holds the lease of job '${jobId}' (epoch ${lease.epoch}): another node drives it; this round was not committed`);
  }
}

export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  readonly location: string;
  private readonly pool: pg.Pool;
  private open = true;

  private constructor(location: string, pool: pg.Pool) {
    this.location = redactLocation(location);
    this.pool = pool;
  }

  /**
   * Connects and brings the schema up to date.
   * @throws FL_ERR_STORE when the server cannot be reached, the schema is newer than this code, or a migration fails
   */
  static async open(location: string, options: PostgresOpenOptions = {}): Promise<PostgresStore> {
    const { connectionString, schema } = parseLocation(location);
    const pool = new pg.Pool({
      connectionString,
      max: options.poolSize ?? 10,
      types: TYPES,
      ...(schema === null ? {} : { options: `-c search_path=${schema}` }),
    });
    // An idle client's connection error (the server restarted) must not crash the process; the
    // pool drops that client and the next query opens a fresh one.
    pool.on('error', () => undefined);
    const store = new PostgresStore(location, pool);
    try {
      await store.migrate(options.migrations ?? POSTGRES_MIGRATIONS, schema);
    } catch (e) {
      await pool.end();
      throw storeError(location, e);
    }
    return store;
  }

  /** Applies the migrations not yet recorded, in version order, in one transaction under the advisory lock. */
  private async migrate(migrations: readonly Migration[], schema: string | null): Promise<number[]> {
    const sorted = [...migrations].sort((a, b) => a.version - b.version);
    sorted.forEach((m, i) => {
      if (m.version !== i + 1) throw new FedloraError('FL_ERR_STORE', `migrations must be numbered 1, 2, 3... without gaps; found ${m.version} at position ${i + 1}`);
    });
    return this.tx(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      if (schema !== null) await c.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      await c.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
      const done = new Set((await c.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
      const newest = Math.max(0, ...done);
      if (newest > sorted.length) {
        throw new FedloraError('FL_ERR_STORE', `${this.location} has schema version ${newest}, newer than this fedlora (${sorted.length}); upgrade fedlora`);
      }
      const applied: number[] = [];
      for (const m of sorted) {
        if (done.has(m.version)) continue;
        await c.query(m.sql);
        await c.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, Date.now()]);
        applied.push(m.version);
      }
      return applied;
    });
  }

  /** Runs `f` in one transaction on one pooled connection; rolls back when it throws. */
  private async tx<T>(f: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.connect();
    let broken: Error | undefined;
    try {
      await c.query('BEGIN');
      const result = await f(c);
      await c.query('COMMIT');
      return result;
    } catch (e) {
      await c.query('ROLLBACK').catch((rollbackError: Error) => {
        broken = rollbackError;
      });
      throw storeError(this.location, e);
    } finally {
      // A connection that could not roll back is destroyed, not returned to the pool.
      c.release(broken);
    }
  }

  private async connect(): Promise<pg.PoolClient> {
    try {
      return await this.pool.connect();
    } catch (e) {
      throw storeError(this.location, e);
    }
  }

  /** One statement outside a transaction. */
  private async query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(sql, params);
    } catch (e) {
      throw storeError(this.location, e);
    }
  }

  async close(): Promise<void> {
    if (!this.open) return;
    this.open = false;
    await this.pool.end();
  }

  isOpen(): boolean {
    return this.open;
  }

  async schemaVersions(): Promise<number[]> {
    return (await this.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version')).rows.map((r) => r.version);
  }

  // ------------------------------------------------------------------ jobs

  async createJob(spec: JobSpec, now = Date.now()): Promise<JobRecord> {
    const id = newId('job');
    const layout = spec.model.modules ?? null;
    const { rows } = await this.query<JobRow>(
      "INSERT INTO jobs (id, spec, status, reason, round, layout, created_at, updated_at) VALUES ($1, $2, 'pending', NULL, 0, $3, $4, $4) RETURNING *",
      [id, JSON.stringify(spec), layout === null ? null : JSON.stringify(layout), now],
    );
    return toJob(rows[0]!);
  }

  async getJob(id: string): Promise<JobRecord | null> {
    const { rows } = await this.query<JobRow>('SELECT * FROM jobs WHERE id = $1', [id]);
    return rows.length === 0 ? null : toJob(rows[0]!);
  }

  async requireJob(id: string): Promise<JobRecord> {
    const job = await this.getJob(id);
    if (job === null) throw notFound(id);
    return job;
  }

  /** The job's row, locked until the transaction ends. */
  private async lockJob(c: pg.PoolClient, id: string): Promise<JobRecord> {
    const { rows } = await c.query<JobRow>('SELECT * FROM jobs WHERE id = $1 FOR UPDATE', [id]);
    if (rows.length === 0) throw notFound(id);
    return toJob(rows[0]!);
  }

  async listJobs(): Promise<JobRecord[]> {
    return (await this.query<JobRow>('SELECT * FROM jobs ORDER BY created_at DESC, seq DESC')).rows.map(toJob);
  }

  async activeJobs(): Promise<JobRecord[]> {
    return (await this.query<JobRow>("SELECT * FROM jobs WHERE status IN ('pending', 'running') ORDER BY created_at, seq")).rows.map(toJob);
  }

  async setJobStatus(id: string, status: JobStatus, reason: string | null = null, now = Date.now()): Promise<void> {
    const { rowCount } = await this.query('UPDATE jobs SET status = $1, reason = $2, updated_at = $3 WHERE id = $4', [status, reason, now, id]);
    if (rowCount !== 1) throw notFound(id);
  }

  async startJob(id: string, layout: readonly ModuleShape[], initial: StateBlob, now = Date.now(), ledger?: string): Promise<void> {
    await this.tx(async (c) => {
      const job = await this.lockJob(c, id);
      const hasState = (await c.query('SELECT 1 FROM global_states WHERE job_id = $1 LIMIT 1', [id])).rowCount !== 0;
      if (job.status !== 'pending' || hasState) {
        throw new FedloraError('FL_ERR_ROUND_STATE', `job '${id}' is ${job.status} and already has a global state; it cannot start again`, { jobId: id });
      }
      await c.query("UPDATE jobs SET layout = $1, status = 'running', updated_at = $2 WHERE id = $3", [JSON.stringify(layout), now, id]);
      await c.query('INSERT INTO global_states (job_id, round, meta, payload) VALUES ($1, 0, $2, $3)', [id, JSON.stringify(initial.meta), toBuffer(initial.payload)]);
      if (ledger !== undefined) await putLedger(c, id, ledger, now);
    });
  }

  async beginAttempt(jobId: string, now = Date.now()): Promise<number> {
    const { rows } = await this.query<{ attempt: number }>('UPDATE jobs SET attempt = attempt + 1, updated_at = $2 WHERE id = $1 RETURNING attempt', [jobId, now]);
    if (rows.length === 0) throw notFound(jobId);
    return rows[0]!.attempt;
  }

  // ------------------------------------------------------------------ enrolment and clients

  async createEnrolmentToken(jobId: string, expiresAt: number, now = Date.now()): Promise<string> {
    const token = newToken();
    await this.tx(async (c) => {
      await this.lockJob(c, jobId);
      await c.query(
        'INSERT INTO enrolment_tokens (token_hash, job_id, created_at, expires_at, token_index) ' +
          'SELECT $1, $2, $3, $4, COALESCE(MAX(token_index) + 1, 0) FROM enrolment_tokens WHERE job_id = $2',
        [hashToken(token), jobId, now, expiresAt],
      );
    });
    return token;
  }

  async enrolmentTokenJob(token: string): Promise<{ jobId: string; tokenIndex: number } | null> {
    const { rows } = await this.query<{ job_id: string; token_index: number }>('SELECT job_id, token_index FROM enrolment_tokens WHERE token_hash = $1', [hashToken(token)]);
    return rows.length === 0 ? null : { jobId: rows[0]!.job_id, tokenIndex: rows[0]!.token_index };
  }

  async enrolmentTokenInfo(token: string): Promise<{ jobId: string; expiresAt: number; used: boolean } | null> {
    const { rows } = await this.query<{ job_id: string; expires_at: number; used_at: number | null }>('SELECT job_id, expires_at, used_at FROM enrolment_tokens WHERE token_hash = $1', [hashToken(token)]);
    return rows.length === 0 ? null : { jobId: rows[0]!.job_id, expiresAt: rows[0]!.expires_at, used: rows[0]!.used_at !== null };
  }

  async enrolClient(jobId: string, token: string, client: NewClient, now = Date.now()): Promise<ClientRecord> {
    return this.tx(async (c) => {
      // The job row first, then the token: one lock order for every enrolment, so no deadlock;
      // a second claimer of the token waits here and then reads it spent.
      const hash = hashToken(token);
      const owner = (await c.query<{ job_id: string }>('SELECT job_id FROM enrolment_tokens WHERE token_hash = $1', [hash])).rows[0];
      if (owner !== undefined && owner.job_id === jobId) await this.lockJob(c, jobId);
      const row = (await c.query<TokenRow>('SELECT job_id, expires_at, used_at, token_index FROM enrolment_tokens WHERE token_hash = $1 FOR UPDATE', [hash])).rows[0];
      checkToken(jobId, row, now);
      if ((await c.query('SELECT 1 FROM clients WHERE job_id = $1 AND sign_public_key = $2', [jobId, client.signPublicKey])).rowCount !== 0) throw keyEnrolled(jobId);
      const id = newId('cl');
      const inserted = await c.query<ClientRow>(
        'INSERT INTO clients (id, job_id, sign_public_key, box_public_key, enrolment_index, token_index, backend, agent, created_at, last_seen_at) ' +
          'SELECT $1, $2, $3, $4, COUNT(*), $5, $6, $7, $8, $8 FROM clients WHERE job_id = $2 RETURNING *',
        [id, jobId, client.signPublicKey, client.boxPublicKey ?? null, row.token_index, JSON.stringify(client.backend), client.agent ?? null, now],
      );
      await c.query('UPDATE enrolment_tokens SET used_at = $1, client_id = $2 WHERE token_hash = $3', [now, id, hash]);
      return toClient(inserted.rows[0]!);
    });
  }

  async getClient(id: string): Promise<ClientRecord | null> {
    const { rows } = await this.query<ClientRow>('SELECT * FROM clients WHERE id = $1', [id]);
    return rows.length === 0 ? null : toClient(rows[0]!);
  }

  async clientByKey(jobId: string, signPublicKey: string): Promise<ClientRecord | null> {
    const { rows } = await this.query<ClientRow>('SELECT * FROM clients WHERE job_id = $1 AND sign_public_key = $2', [jobId, signPublicKey]);
    return rows.length === 0 ? null : toClient(rows[0]!);
  }

  async clientsOfJob(jobId: string): Promise<ClientRecord[]> {
    return (await this.query<ClientRow>('SELECT * FROM clients WHERE job_id = $1 ORDER BY enrolment_index', [jobId])).rows.map(toClient);
  }

  async touchClient(id: string, backend: BackendInfo, agent: string | undefined, now = Date.now()): Promise<void> {
    await this.query('UPDATE clients SET backend = $1, agent = $2, last_seen_at = $3 WHERE id = $4', [JSON.stringify(backend), agent ?? null, now, id]);
  }

  // ------------------------------------------------------------------ rounds

  async commitRound(cm: RoundCommit): Promise<JobRecord> {
    return this.tx(async (c) => {
      const job = await this.lockJob(c, cm.jobId);
      checkCommit(job, cm);
      if (cm.lease !== undefined) await checkLease(c, cm.jobId, cm.lease);
      const accepted = cm.updates.filter((u) => u.status === 'accepted').length;
      await c.query(
        'INSERT INTO rounds (job_id, round, attempts, participants, metrics, started_at, committed_at, accepted, refused) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)',
        [cm.jobId, cm.round, cm.attempts, JSON.stringify(cm.participants), JSON.stringify(cm.metrics), cm.startedAt, cm.committedAt, accepted, cm.updates.length - accepted],
      );
      await insertUpdates(c, cm.jobId, cm.round, cm.updates);
      await c.query('INSERT INTO global_states (job_id, round, meta, payload) VALUES ($1, $2, $3, $4)', [cm.jobId, cm.round + 1, JSON.stringify(cm.state.meta), toBuffer(cm.state.payload)]);
      if (cm.ledger !== undefined) await putLedger(c, cm.jobId, cm.ledger, cm.committedAt);
      if (cm.nonces.length > 0) {
        // A nonce row may be written again only by the same client for the same round (claimed by
        // useNonce, then committed); any other reuse changes no row and refuses the commit.
        const { rows } = await c.query<{ nonce: string }>(
          'INSERT INTO used_nonces (job_id, nonce, client_id, round) SELECT $1, n, cl, $2 FROM unnest($3::text[], $4::text[]) AS t(n, cl) ' +
            'ON CONFLICT (job_id, nonce) DO UPDATE SET round = EXCLUDED.round WHERE used_nonces.client_id = EXCLUDED.client_id AND used_nonces.round = EXCLUDED.round RETURNING nonce',
          [cm.jobId, cm.round, cm.nonces.map((n) => n.nonce), cm.nonces.map((n) => n.clientId)],
        );
        if (rows.length !== cm.nonces.length) {
          const written = new Set(rows.map((r) => r.nonce));
          throw replayError(cm.jobId, cm.nonces.find((n) => !written.has(n.nonce))!.nonce, cm.round);
        }
      }
      const next = cm.round + 1;
      const status: JobStatus = next >= job.spec.rounds ? 'completed' : 'running';
      const { rows } = await c.query<JobRow>('UPDATE jobs SET round = $1, attempt = -1, status = $2, updated_at = $3 WHERE id = $4 RETURNING *', [next, status, cm.committedAt, cm.jobId]);
      return toJob(rows[0]!);
    });
  }

  async recordUpdates(jobId: string, round: number, updates: readonly UpdateRecord[]): Promise<void> {
    if (updates.length === 0) return;
    // One multi-row statement is atomic on its own: no explicit transaction needed.
    const c = await this.connect();
    try {
      await insertUpdates(c, jobId, round, updates);
    } catch (e) {
      throw storeError(this.location, e);
    } finally {
      c.release();
    }
  }

  async rounds(jobId: string): Promise<RoundRecord[]> {
    return (await this.query<RoundRow>('SELECT * FROM rounds WHERE job_id = $1 ORDER BY round', [jobId])).rows.map(toRound);
  }

  async updates(jobId: string, round?: number): Promise<StoredUpdate[]> {
    const { rows } = round === undefined
      ? await this.query<UpdateRow>('SELECT * FROM updates WHERE job_id = $1 ORDER BY id', [jobId])
      : await this.query<UpdateRow>('SELECT * FROM updates WHERE job_id = $1 AND round = $2 ORDER BY id', [jobId, round]);
    return rows.map(toUpdate);
  }

  async refusalsByReason(jobId: string): Promise<Record<string, number>> {
    const { rows } = await this.query<{ code: string | null; n: number }>("SELECT reason_code AS code, COUNT(*) AS n FROM updates WHERE job_id = $1 AND status = 'refused' GROUP BY reason_code", [jobId]);
    return Object.fromEntries(rows.map((r) => [r.code ?? 'unknown', r.n]));
  }

  async latestState(jobId: string): Promise<StoredState | null> {
    const { rows } = await this.query<{ round: number; meta: string; payload: Buffer }>('SELECT round, meta, payload FROM global_states WHERE job_id = $1 ORDER BY round DESC LIMIT 1', [jobId]);
    if (rows.length === 0) return null;
    const row = rows[0]!;
    return { round: row.round, meta: JSON.parse(row.meta) as unknown, payload: new Uint8Array(row.payload) };
  }

  async ledger(jobId: string): Promise<string | null> {
    const { rows } = await this.query<{ state: string }>('SELECT state FROM ledger WHERE job_id = $1', [jobId]);
    return rows.length === 0 ? null : rows[0]!.state;
  }

  async isNonceUsed(jobId: string, nonce: string): Promise<boolean> {
    return (await this.query('SELECT 1 FROM used_nonces WHERE job_id = $1 AND nonce = $2', [jobId, nonce])).rowCount !== 0;
  }

  async useNonce(jobId: string, nonce: string, clientId: string, round: number): Promise<boolean> {
    const { rowCount } = await this.query('INSERT INTO used_nonces (job_id, nonce, client_id, round) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING', [jobId, nonce, clientId, round]);
    return rowCount === 1;
  }
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

async function putLedger(c: pg.PoolClient, jobId: string, ledger: string, now: number): Promise<void> {
  await c.query('INSERT INTO ledger (job_id, state, updated_at) VALUES ($1, $2, $3) ON CONFLICT (job_id) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at', [jobId, ledger, now]);
}

/** All of a round's update records in one statement (arrays unnested in order: ids follow arrival). */
async function insertUpdates(c: pg.PoolClient, jobId: string, round: number, updates: readonly UpdateRecord[]): Promise<void> {
  if (updates.length === 0) return;
  await c.query(
    'INSERT INTO updates (job_id, round, attempt, client_id, status, reason_code, reason_message, bytes, examples, received_at) ' +
      'SELECT $1, $2, attempt, client_id, status, reason_code, reason_message, bytes, examples, received_at FROM unnest($3::int[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::int[], $10::bigint[]) WITH ORDINALITY ' +
      'AS t(attempt, client_id, status, reason_code, reason_message, bytes, examples, received_at, ord) ORDER BY ord',
    [
      jobId, round,
      updates.map((u) => u.attempt), updates.map((u) => u.clientId), updates.map((u) => u.status),
      updates.map((u) => u.reasonCode ?? null), updates.map((u) => u.reasonMessage ?? null),
      updates.map((u) => u.bytes), updates.map((u) => u.examples ?? null), updates.map((u) => u.receivedAt),
    ],
  );
}
