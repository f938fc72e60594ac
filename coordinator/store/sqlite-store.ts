/**
 * The Store on one SQLite file (better-sqlite3): the embedded default, nothing to install. The
 * driver is synchronous; each method runs its statements at once and returns a settled Promise, so
 * one method's transaction never interleaves with another's in this process. Write transactions
 * are IMMEDIATE: they take the write lock before their first read, so two processes on one file
 * wait on the busy timeout instead of failing to upgrade a read lock (SQLITE_BUSY).
 * Crash safety comes from database.ts (WAL, synchronous=FULL).
 */
import { FedloraError } from '../../shared/errors.js';
import type { JobSpec, ModuleShape } from '../../shared/protocol/job-spec.js';
import type { BackendInfo } from '../../shared/protocol/events.js';
import type { JobStatus } from '../../shared/protocol/http.js';
import { openDatabase, type OpenOptions, type SqliteDatabase } from './database.js';
import {
  hashToken, newId, newToken,
  type ClientRecord, type JobRecord, type NewClient, type RoundCommit, type RoundRecord, type StateBlob, type Store, type StoredState,
  type StoredUpdate, type UpdateRecord,
} from './store-api.js';
import {
  checkCommit, checkToken, keyEnrolled, notFound, replayError, toClient, toJob, toRound, toUpdate,
  type ClientRow, type JobRow, type RoundRow, type TokenRow, type UpdateRow,
} from './rows.js';

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * A nonce row may be written twice only by the same client for the same round (claimed by
 * useNonce, then committed); any other reuse changes no row and refuses the commit.
 */
const INSERT_NONCE_SQLITE =
  'INSERT INTO used_nonces (job_id, nonce, client_id, round) VALUES (?, ?, ?, ?) ' +
  'ON CONFLICT (job_id, nonce) DO UPDATE SET round = excluded.round WHERE used_nonces.client_id = excluded.client_id AND used_nonces.round = excluded.round';

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly location: string;
  private readonly db: SqliteDatabase;

  private constructor(path: string, db: SqliteDatabase) {
    this.location = path;
    this.db = db;
  }

  /** Opens the store at `path` (a file, or `:memory:`), creating and migrating it as needed. */
  static open(path: string, options: OpenOptions = {}): Promise<SqliteStore> {
    return Promise.resolve().then(() => new SqliteStore(path, openDatabase(path, options)));
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  isOpen(): boolean {
    return this.db.open;
  }

  async schemaVersions(): Promise<number[]> {
    return (this.db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as Array<{ version: number }>).map((r) => r.version);
  }

  /** Runs `f` in one IMMEDIATE transaction (see the file comment). */
  private write<T>(f: () => T): T {
    return this.db.transaction(f).immediate();
  }

  private job(id: string): JobRecord | null {
    const row = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
    return row === undefined ? null : toJob(row);
  }

  private mustJob(id: string): JobRecord {
    const job = this.job(id);
    if (job === null) throw notFound(id);
    return job;
  }

  private client(id: string): ClientRecord | null {
    const row = this.db.prepare('SELECT * FROM clients WHERE id = ?').get(id) as ClientRow | undefined;
    return row === undefined ? null : toClient(row);
  }

  // ------------------------------------------------------------------ jobs

  async createJob(spec: JobSpec, now = Date.now()): Promise<JobRecord> {
    const id = newId('job');
    const layout = spec.model.modules ?? null;
    this.db
      .prepare('INSERT INTO jobs (id, spec, status, reason, round, layout, created_at, updated_at) VALUES (?, ?, ?, NULL, 0, ?, ?, ?)')
      .run(id, JSON.stringify(spec), 'pending', layout === null ? null : JSON.stringify(layout), now, now);
    return this.mustJob(id);
  }

  async getJob(id: string): Promise<JobRecord | null> {
    return this.job(id);
  }

  async requireJob(id: string): Promise<JobRecord> {
    return this.mustJob(id);
  }

  async listJobs(): Promise<JobRecord[]> {
    return (this.db.prepare('SELECT * FROM jobs ORDER BY created_at DESC, rowid DESC').all() as JobRow[]).map(toJob);
  }

  async activeJobs(): Promise<JobRecord[]> {
    return (this.db.prepare("SELECT * FROM jobs WHERE status IN ('pending', 'running') ORDER BY created_at, rowid").all() as JobRow[]).map(toJob);
  }

  async setJobStatus(id: string, status: JobStatus, reason: string | null = null, now = Date.now()): Promise<void> {
    const info = this.db.prepare('UPDATE jobs SET status = ?, reason = ?, updated_at = ? WHERE id = ?').run(status, reason, now, id);
    if (info.changes !== 1) throw notFound(id);
  }

  async startJob(id: string, layout: readonly ModuleShape[], initial: StateBlob, now = Date.now(), ledger?: string): Promise<void> {
    this.write(() => {
      const job = this.mustJob(id);
      const hasState = this.db.prepare('SELECT 1 FROM global_states WHERE job_id = ?').get(id) !== undefined;
      if (job.status !== 'pending' || hasState) {
        throw new FedloraError('FL_ERR_ROUND_STATE', `job '${id}' is ${job.status} and already has a global state; it cannot start again`, { jobId: id });
      }
      this.db.prepare("UPDATE jobs SET layout = ?, status = 'running', updated_at = ? WHERE id = ?").run(JSON.stringify(layout), now, id);
      this.db.prepare('INSERT INTO global_states (job_id, round, meta, payload) VALUES (?, 0, ?, ?)').run(id, JSON.stringify(initial.meta), toBuffer(initial.payload));
      if (ledger !== undefined) this.putLedger(id, ledger, now);
    });
  }

  private putLedger(jobId: string, ledger: string, now: number): void {
    this.db
      .prepare('INSERT INTO ledger (job_id, state, updated_at) VALUES (?, ?, ?) ON CONFLICT (job_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at')
      .run(jobId, ledger, now);
  }

  async beginAttempt(jobId: string, now = Date.now()): Promise<number> {
    return this.write(() => {
      const attempt = this.mustJob(jobId).attempt + 1;
      this.db.prepare('UPDATE jobs SET attempt = ?, updated_at = ? WHERE id = ?').run(attempt, now, jobId);
      return attempt;
    });
  }

  // ------------------------------------------------------------------ enrolment and clients

  async createEnrolmentToken(jobId: string, expiresAt: number, now = Date.now()): Promise<string> {
    const token = newToken();
    this.write(() => {
      this.mustJob(jobId);
      const { next } = this.db.prepare('SELECT COALESCE(MAX(token_index) + 1, 0) AS next FROM enrolment_tokens WHERE job_id = ?').get(jobId) as { next: number };
      this.db.prepare('INSERT INTO enrolment_tokens (token_hash, job_id, created_at, expires_at, token_index) VALUES (?, ?, ?, ?, ?)').run(hashToken(token), jobId, now, expiresAt, next);
    });
    return token;
  }

  async enrolmentTokenJob(token: string): Promise<{ jobId: string; tokenIndex: number } | null> {
    const row = this.db.prepare('SELECT job_id, token_index FROM enrolment_tokens WHERE token_hash = ?').get(hashToken(token)) as { job_id: string; token_index: number } | undefined;
    return row === undefined ? null : { jobId: row.job_id, tokenIndex: row.token_index };
  }

  async enrolmentTokenInfo(token: string): Promise<{ jobId: string; expiresAt: number; used: boolean } | null> {
    const row = this.db.prepare('SELECT job_id, expires_at, used_at FROM enrolment_tokens WHERE token_hash = ?').get(hashToken(token)) as { job_id: string; expires_at: number; used_at: number | null } | undefined;
    return row === undefined ? null : { jobId: row.job_id, expiresAt: row.expires_at, used: row.used_at !== null };
  }

  async enrolClient(jobId: string, token: string, client: NewClient, now = Date.now()): Promise<ClientRecord> {
    return this.write(() => {
      const row = this.db.prepare('SELECT job_id, expires_at, used_at, token_index FROM enrolment_tokens WHERE token_hash = ?').get(hashToken(token)) as TokenRow | undefined;
      checkToken(jobId, row, now);
      if (this.db.prepare('SELECT 1 FROM clients WHERE job_id = ? AND sign_public_key = ?').get(jobId, client.signPublicKey) !== undefined) throw keyEnrolled(jobId);
      const id = newId('cl');
      const { n } = this.db.prepare('SELECT COUNT(*) AS n FROM clients WHERE job_id = ?').get(jobId) as { n: number };
      this.db
        .prepare('INSERT INTO clients (id, job_id, sign_public_key, box_public_key, enrolment_index, token_index, backend, agent, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(id, jobId, client.signPublicKey, client.boxPublicKey ?? null, n, row!.token_index, JSON.stringify(client.backend), client.agent ?? null, now, now);
      this.db.prepare('UPDATE enrolment_tokens SET used_at = ?, client_id = ? WHERE token_hash = ?').run(now, id, hashToken(token));
      return this.client(id)!;
    });
  }

  async getClient(id: string): Promise<ClientRecord | null> {
    return this.client(id);
  }

  async clientByKey(jobId: string, signPublicKey: string): Promise<ClientRecord | null> {
    const row = this.db.prepare('SELECT * FROM clients WHERE job_id = ? AND sign_public_key = ?').get(jobId, signPublicKey) as ClientRow | undefined;
    return row === undefined ? null : toClient(row);
  }

  async clientsOfJob(jobId: string): Promise<ClientRecord[]> {
    return (this.db.prepare('SELECT * FROM clients WHERE job_id = ? ORDER BY enrolment_index').all(jobId) as ClientRow[]).map(toClient);
  }

  async touchClient(id: string, backend: BackendInfo, agent: string | undefined, now = Date.now()): Promise<void> {
    this.db.prepare('UPDATE clients SET backend = ?, agent = ?, last_seen_at = ? WHERE id = ?').run(JSON.stringify(backend), agent ?? null, now, id);
  }

  // ------------------------------------------------------------------ rounds

  async commitRound(c: RoundCommit): Promise<JobRecord> {
    return this.write(() => {
      const job = this.mustJob(c.jobId);
      checkCommit(job, c);
      const accepted = c.updates.filter((u) => u.status === 'accepted').length;
      this.db
        .prepare('INSERT INTO rounds (job_id, round, attempts, participants, metrics, started_at, committed_at, accepted, refused) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(c.jobId, c.round, c.attempts, JSON.stringify(c.participants), JSON.stringify(c.metrics), c.startedAt, c.committedAt, accepted, c.updates.length - accepted);
      this.insertUpdates(c.jobId, c.round, c.updates);
      this.db.prepare('INSERT INTO global_states (job_id, round, meta, payload) VALUES (?, ?, ?, ?)').run(c.jobId, c.round + 1, JSON.stringify(c.state.meta), toBuffer(c.state.payload));
      if (c.ledger !== undefined) this.putLedger(c.jobId, c.ledger, c.committedAt);
      const nonce = this.db.prepare(INSERT_NONCE_SQLITE);
      for (const n of c.nonces) {
        if (nonce.run(c.jobId, n.nonce, n.clientId, c.round).changes !== 1) throw replayError(c.jobId, n.nonce, c.round);
      }
      const next = c.round + 1;
      const status: JobStatus = next >= job.spec.rounds ? 'completed' : 'running';
      this.db.prepare('UPDATE jobs SET round = ?, attempt = -1, status = ?, updated_at = ? WHERE id = ?').run(next, status, c.committedAt, c.jobId);
      return this.mustJob(c.jobId);
    });
  }

  async recordUpdates(jobId: string, round: number, updates: readonly UpdateRecord[]): Promise<void> {
    this.write(() => this.insertUpdates(jobId, round, updates));
  }

  private insertUpdates(jobId: string, round: number, updates: readonly UpdateRecord[]): void {
    const insert = this.db.prepare(
      'INSERT INTO updates (job_id, round, attempt, client_id, status, reason_code, reason_message, bytes, examples, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    for (const u of updates) {
      insert.run(jobId, round, u.attempt, u.clientId, u.status, u.reasonCode ?? null, u.reasonMessage ?? null, u.bytes, u.examples ?? null, u.receivedAt);
    }
  }

  async rounds(jobId: string): Promise<RoundRecord[]> {
    return (this.db.prepare('SELECT * FROM rounds WHERE job_id = ? ORDER BY round').all(jobId) as RoundRow[]).map(toRound);
  }

  async updates(jobId: string, round?: number): Promise<StoredUpdate[]> {
    const rows = (
      round === undefined
        ? this.db.prepare('SELECT * FROM updates WHERE job_id = ? ORDER BY id').all(jobId)
        : this.db.prepare('SELECT * FROM updates WHERE job_id = ? AND round = ? ORDER BY id').all(jobId, round)
    ) as UpdateRow[];
    return rows.map(toUpdate);
  }

  async refusalsByReason(jobId: string): Promise<Record<string, number>> {
    const rows = this.db.prepare("SELECT reason_code AS code, COUNT(*) AS n FROM updates WHERE job_id = ? AND status = 'refused' GROUP BY reason_code").all(jobId) as Array<{ code: string | null; n: number }>;
    return Object.fromEntries(rows.map((r) => [r.code ?? 'unknown', r.n]));
  }

  async latestState(jobId: string): Promise<StoredState | null> {
    const row = this.db.prepare('SELECT round, meta, payload FROM global_states WHERE job_id = ? ORDER BY round DESC LIMIT 1').get(jobId) as
      | { round: number; meta: string; payload: Buffer }
      | undefined;
    return row === undefined ? null : { round: row.round, meta: JSON.parse(row.meta) as unknown, payload: new Uint8Array(row.payload) };
  }

  async ledger(jobId: string): Promise<string | null> {
    const row = this.db.prepare('SELECT state FROM ledger WHERE job_id = ?').get(jobId) as { state: string } | undefined;
    return row === undefined ? null : row.state;
  }

  async isNonceUsed(jobId: string, nonce: string): Promise<boolean> {
    return this.db.prepare('SELECT 1 FROM used_nonces WHERE job_id = ? AND nonce = ?').get(jobId, nonce) !== undefined;
  }

  async useNonce(jobId: string, nonce: string, clientId: string, round: number): Promise<boolean> {
    return this.db.prepare('INSERT INTO used_nonces (job_id, nonce, client_id, round) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING').run(jobId, nonce, clientId, round).changes === 1;
  }
}

