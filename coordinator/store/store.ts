/**
 * The coordinator's persistent record: jobs, enrolment tokens, clients, committed rounds, per-client
 * update records, global states, the privacy ledger and used nonces, on one SQLite file.
 *
 * The engine's one write that matters, `commitRound`, is a single transaction: the round record,
 * every update record, the next global state, the ledger and the used nonces land together or not
 * at all, so a coordinator killed at any moment reopens on the last committed round (docs/architecture.md,
 * "One round, end to end", step 7).
 */
import { createHash, randomBytes } from 'node:crypto';
import { FedloraError } from '../../shared/errors.js';
import type { JobSpec, ModuleShape } from '../../shared/protocol/job-spec.js';
import type { BackendInfo } from '../../shared/protocol/events.js';
import type { JobStatus } from '../../shared/protocol/http.js';
import { openDatabase, type OpenOptions, type SqliteDatabase } from './database.js';

export interface JobRecord {
  readonly id: string;
  readonly spec: JobSpec;
  readonly status: JobStatus;
  readonly reason: string | null;
  /** Committed rounds (= the index of the next round). */
  readonly round: number;
  /** The last attempt started of the next round, -1 when none (see {@link Store.beginAttempt}). */
  readonly attempt: number;
  /** The adapted modules, once known (from the spec or the first client). */
  readonly layout: ModuleShape[] | null;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface ClientRecord {
  readonly id: string;
  readonly jobId: string;
  readonly signPublicKey: string;
  readonly boxPublicKey: string | null;
  readonly enrolmentIndex: number;
  /**
   * 0-based creation index of the client's enrolment token in its job: a key that does not depend
   * on connection order (the engine derives seeds, ranks and aggregation order from it).
   */
  readonly tokenIndex: number;
  readonly backend: BackendInfo;
  readonly agent: string | null;
  readonly createdAt: number;
  readonly lastSeenAt: number;
}

export interface UpdateRecord {
  readonly clientId: string | null;
  readonly attempt: number;
  readonly status: 'accepted' | 'refused';
  readonly reasonCode?: string;
  readonly reasonMessage?: string;
  readonly bytes: number;
  readonly examples?: number;
  readonly receivedAt: number;
}

export interface StoredUpdate extends UpdateRecord {
  readonly round: number;
}

export interface RoundRecord {
  readonly jobId: string;
  readonly round: number;
  readonly attempts: number;
  readonly participants: string[];
  readonly metrics: Record<string, number>;
  readonly startedAt: number;
  readonly committedAt: number;
  readonly accepted: number;
  readonly refused: number;
}

/** A global state as stored: engine JSON plus a safetensors payload. */
export interface StateBlob {
  readonly meta: unknown;
  readonly payload: Uint8Array;
}

export interface StoredState extends StateBlob {
  /** Committed rounds this state follows (0: the initial state). */
  readonly round: number;
}

/** Everything one round commits, in one transaction. */
export interface RoundCommit {
  readonly jobId: string;
  /** The round being committed; must equal the job's committed-round count. */
  readonly round: number;
  readonly attempts: number;
  readonly participants: readonly string[];
  readonly metrics: Readonly<Record<string, number>>;
  readonly startedAt: number;
  readonly committedAt: number;
  readonly updates: readonly UpdateRecord[];
  /** The global state after this round (stored as state `round + 1`). */
  readonly state: StateBlob;
  /** The privacy ledger after this round, as JSON, when DP accounting is on. */
  readonly ledger?: string;
  readonly nonces: ReadonlyArray<{ readonly nonce: string; readonly clientId: string }>;
}

export interface NewClient {
  readonly signPublicKey: string;
  readonly boxPublicKey?: string;
  readonly backend: BackendInfo;
  readonly agent?: string;
}

interface JobRow {
  id: string;
  spec: string;
  status: JobStatus;
  reason: string | null;
  round: number;
  attempt: number;
  layout: string | null;
  created_at: number;
  updated_at: number;
}

interface ClientRow {
  id: string;
  job_id: string;
  sign_public_key: string;
  box_public_key: string | null;
  enrolment_index: number;
  token_index: number | null;
  backend: string;
  agent: string | null;
  created_at: number;
  last_seen_at: number;
}

interface RoundRow {
  job_id: string;
  round: number;
  attempts: number;
  participants: string;
  metrics: string;
  started_at: number;
  committed_at: number;
  accepted: number;
  refused: number;
}

/** A random id with a readable prefix: `job_` + 16 base64url characters (96 bits). */
export function newId(prefix: string): string {
  return `${prefix}_${randomBytes(12).toString('base64url')}`;
}

/** SHA-256 hex of a token: tokens are stored only hashed, so a copy of the database enrols no one. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

function toJob(row: JobRow): JobRecord {
  return {
    id: row.id,
    spec: JSON.parse(row.spec) as JobSpec,
    status: row.status,
    reason: row.reason,
    round: row.round,
    attempt: row.attempt,
    layout: row.layout === null ? null : (JSON.parse(row.layout) as ModuleShape[]),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function toClient(row: ClientRow): ClientRecord {
  return {
    id: row.id,
    jobId: row.job_id,
    signPublicKey: row.sign_public_key,
    boxPublicKey: row.box_public_key,
    enrolmentIndex: row.enrolment_index,
    tokenIndex: row.token_index ?? row.enrolment_index,
    backend: JSON.parse(row.backend) as BackendInfo,
    agent: row.agent,
    createdAt: row.created_at,
    lastSeenAt: row.last_seen_at,
  };
}

function toRound(row: RoundRow): RoundRecord {
  return {
    jobId: row.job_id,
    round: row.round,
    attempts: row.attempts,
    participants: JSON.parse(row.participants) as string[],
    metrics: JSON.parse(row.metrics) as Record<string, number>,
    startedAt: row.started_at,
    committedAt: row.committed_at,
    accepted: row.accepted,
    refused: row.refused,
  };
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export class Store {
  readonly path: string;
  private readonly db: SqliteDatabase;

  private constructor(path: string, db: SqliteDatabase) {
    this.path = path;
    this.db = db;
  }

  /** Opens the store at `path` (a file, or `:memory:`), creating and migrating it as needed. */
  static open(path: string, options: OpenOptions = {}): Store {
    return new Store(path, openDatabase(path, options));
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  get isOpen(): boolean {
    return this.db.open;
  }

  /** Versions of the applied migrations, ascending. */
  schemaVersions(): number[] {
    return (this.db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as Array<{ version: number }>).map((r) => r.version);
  }

  // ------------------------------------------------------------------ jobs

  createJob(spec: JobSpec, now = Date.now()): JobRecord {
    const id = newId('job');
    const layout = spec.model.modules ?? null;
    this.db
      .prepare('INSERT INTO jobs (id, spec, status, reason, round, layout, created_at, updated_at) VALUES (?, ?, ?, NULL, 0, ?, ?, ?)')
      .run(id, JSON.stringify(spec), 'pending', layout === null ? null : JSON.stringify(layout), now, now);
    return this.requireJob(id);
  }

  getJob(id: string): JobRecord | null {
    const row = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
    return row === undefined ? null : toJob(row);
  }

  /** The job, or FL_ERR_NOT_FOUND naming it. */
  requireJob(id: string): JobRecord {
    const job = this.getJob(id);
    if (job === null) throw new FedloraError('FL_ERR_NOT_FOUND', `no job '${id}'`, { jobId: id });
    return job;
  }

  /** Every job, newest first. */
  listJobs(): JobRecord[] {
    return (this.db.prepare('SELECT * FROM jobs ORDER BY created_at DESC, rowid DESC').all() as JobRow[]).map(toJob);
  }

  /** Jobs the engine must drive after a start or restart. */
  activeJobs(): JobRecord[] {
    return (this.db.prepare("SELECT * FROM jobs WHERE status IN ('pending', 'running') ORDER BY created_at").all() as JobRow[]).map(toJob);
  }

  setJobStatus(id: string, status: JobStatus, reason: string | null = null, now = Date.now()): void {
    const info = this.db.prepare('UPDATE jobs SET status = ?, reason = ?, updated_at = ? WHERE id = ?').run(status, reason, now, id);
    if (info.changes !== 1) throw new FedloraError('FL_ERR_NOT_FOUND', `no job '${id}'`, { jobId: id });
  }

  /**
   * Fixes the job's adapted modules and its initial global state (state 0), and marks it running,
   * in one transaction. Refused if the job already has a state.
   * @param ledger the privacy ledger JSON to store with it (Fed-SB's init gradient release)
   */
  startJob(id: string, layout: readonly ModuleShape[], initial: StateBlob, now = Date.now(), ledger?: string): void {
    this.db.transaction(() => {
      const job = this.requireJob(id);
      if (job.status !== 'pending' || this.latestState(id) !== null) {
        throw new FedloraError('FL_ERR_ROUND_STATE', `job '${id}' is ${job.status} and already has a global state; it cannot start again`, { jobId: id });
      }
      this.db.prepare("UPDATE jobs SET layout = ?, status = 'running', updated_at = ? WHERE id = ?").run(JSON.stringify(layout), now, id);
      this.db.prepare('INSERT INTO global_states (job_id, round, meta, payload) VALUES (?, 0, ?, ?)').run(id, JSON.stringify(initial.meta), toBuffer(initial.payload));
      if (ledger !== undefined) {
        this.db
          .prepare('INSERT INTO ledger (job_id, state, updated_at) VALUES (?, ?, ?) ON CONFLICT (job_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at')
          .run(id, ledger, now);
      }
    })();
  }

  /**
   * Starts a new attempt of the job's next round and returns its number (0, 1, 2...). Persisted
   * before any offer goes out, so after a restart the round resumes under a fresh attempt number
   * and envelopes sealed for an attempt that never committed fail their binding (no replay into
   * the resumed round).
   */
  beginAttempt(jobId: string, now = Date.now()): number {
    return this.db.transaction(() => {
      const job = this.requireJob(jobId);
      const attempt = job.attempt + 1;
      this.db.prepare('UPDATE jobs SET attempt = ?, updated_at = ? WHERE id = ?').run(attempt, now, jobId);
      return attempt;
    })();
  }

  // ------------------------------------------------------------------ enrolment and clients

  /**
   * Makes a one-use enrolment token for a job; only its SHA-256 is stored.
   * @returns the token (43 base64url characters, 256 bits)
   */
  createEnrolmentToken(jobId: string, expiresAt: number, now = Date.now()): string {
    this.requireJob(jobId);
    const token = randomBytes(32).toString('base64url');
    this.db.transaction(() => {
      const { next } = this.db.prepare('SELECT COALESCE(MAX(token_index) + 1, 0) AS next FROM enrolment_tokens WHERE job_id = ?').get(jobId) as { next: number };
      this.db.prepare('INSERT INTO enrolment_tokens (token_hash, job_id, created_at, expires_at, token_index) VALUES (?, ?, ?, ?, ?)').run(hashToken(token), jobId, now, expiresAt, next);
    })();
    return token;
  }

  /**
   * The job an enrolment token was made for, without spending it (a hello names no job: the
   * coordinator knows it from the token). Used or expired tokens are reported as such by
   * `enrolClient`, which spends them.
   * @returns null when no job has this token
   */
  enrolmentTokenJob(token: string): { jobId: string; tokenIndex: number } | null {
    const row = this.db.prepare('SELECT job_id, token_index FROM enrolment_tokens WHERE token_hash = ?').get(hashToken(token)) as { job_id: string; token_index: number } | undefined;
    return row === undefined ? null : { jobId: row.job_id, tokenIndex: row.token_index };
  }

  /**
   * An enrolment token's job, expiry and whether it was used, without spending it (the join page
   * shows the job before the data owner joins).
   * @returns null when no job has this token
   */
  enrolmentTokenInfo(token: string): { jobId: string; expiresAt: number; used: boolean } | null {
    const row = this.db.prepare('SELECT job_id, expires_at, used_at FROM enrolment_tokens WHERE token_hash = ?').get(hashToken(token)) as { job_id: string; expires_at: number; used_at: number | null } | undefined;
    return row === undefined ? null : { jobId: row.job_id, expiresAt: row.expires_at, used: row.used_at !== null };
  }

  /**
   * Spends a token and enrols a client with its public key, in one transaction.
   * @throws FL_ERR_ENROLMENT when the token is unknown, for another job, used or expired, or the key is already enrolled
   */
  enrolClient(jobId: string, token: string, client: NewClient, now = Date.now()): ClientRecord {
    return this.db.transaction(() => {
      const row = this.db.prepare('SELECT job_id, expires_at, used_at, token_index FROM enrolment_tokens WHERE token_hash = ?').get(hashToken(token)) as
        | { job_id: string; expires_at: number; used_at: number | null; token_index: number }
        | undefined;
      if (row === undefined || row.job_id !== jobId) throw new FedloraError('FL_ERR_ENROLMENT', `enrolment token is not one of job '${jobId}'`, { jobId });
      if (row.used_at !== null) throw new FedloraError('FL_ERR_ENROLMENT', 'enrolment token was already used; ask the job owner for a new one', { jobId });
      if (row.expires_at <= now) throw new FedloraError('FL_ERR_ENROLMENT', `enrolment token expired at ${new Date(row.expires_at).toISOString()}`, { jobId });
      if (this.clientByKey(jobId, client.signPublicKey) !== null) {
        throw new FedloraError('FL_ERR_ENROLMENT', `this public key is already enrolled in job '${jobId}'; reconnect with its clientId`, { jobId });
      }
      const id = newId('cl');
      const { n } = this.db.prepare('SELECT COUNT(*) AS n FROM clients WHERE job_id = ?').get(jobId) as { n: number };
      this.db
        .prepare('INSERT INTO clients (id, job_id, sign_public_key, box_public_key, enrolment_index, token_index, backend, agent, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(id, jobId, client.signPublicKey, client.boxPublicKey ?? null, n, row.token_index, JSON.stringify(client.backend), client.agent ?? null, now, now);
      this.db.prepare('UPDATE enrolment_tokens SET used_at = ?, client_id = ? WHERE token_hash = ?').run(now, id, hashToken(token));
      return this.getClient(id)!;
    })();
  }

  getClient(id: string): ClientRecord | null {
    const row = this.db.prepare('SELECT * FROM clients WHERE id = ?').get(id) as ClientRow | undefined;
    return row === undefined ? null : toClient(row);
  }

  clientByKey(jobId: string, signPublicKey: string): ClientRecord | null {
    const row = this.db.prepare('SELECT * FROM clients WHERE job_id = ? AND sign_public_key = ?').get(jobId, signPublicKey) as ClientRow | undefined;
    return row === undefined ? null : toClient(row);
  }

  clientsOfJob(jobId: string): ClientRecord[] {
    return (this.db.prepare('SELECT * FROM clients WHERE job_id = ? ORDER BY enrolment_index').all(jobId) as ClientRow[]).map(toClient);
  }

  /** Records a returning client's latest backend report and contact time. */
  touchClient(id: string, backend: BackendInfo, agent: string | undefined, now = Date.now()): void {
    this.db.prepare('UPDATE clients SET backend = ?, agent = ?, last_seen_at = ? WHERE id = ?').run(JSON.stringify(backend), agent ?? null, now, id);
  }

  // ------------------------------------------------------------------ rounds

  /**
   * Commits one round: the round record, the update records, the next global state, the ledger,
   * the used nonces, and the job's round counter (and `completed` after its last round), in ONE
   * transaction.
   * @throws FL_ERR_ROUND_STATE when the job is not running or `round` is not its next round (a
   *   stale or duplicated commit); nothing is written then
   */
  commitRound(c: RoundCommit): JobRecord {
    return this.db.transaction(() => {
      const job = this.requireJob(c.jobId);
      if (job.status !== 'running') throw new FedloraError('FL_ERR_ROUND_STATE', `job '${c.jobId}' is ${job.status}; round ${c.round} cannot commit`, { jobId: c.jobId });
      if (job.round !== c.round) {
        throw new FedloraError('FL_ERR_ROUND_STATE', `job '${c.jobId}' expects round ${job.round} next, not ${c.round}`, { jobId: c.jobId, round: c.round });
      }
      const accepted = c.updates.filter((u) => u.status === 'accepted').length;
      this.db
        .prepare('INSERT INTO rounds (job_id, round, attempts, participants, metrics, started_at, committed_at, accepted, refused) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(c.jobId, c.round, c.attempts, JSON.stringify(c.participants), JSON.stringify(c.metrics), c.startedAt, c.committedAt, accepted, c.updates.length - accepted);
      this.insertUpdates(c.jobId, c.round, c.updates);
      this.db.prepare('INSERT INTO global_states (job_id, round, meta, payload) VALUES (?, ?, ?, ?)').run(c.jobId, c.round + 1, JSON.stringify(c.state.meta), toBuffer(c.state.payload));
      if (c.ledger !== undefined) {
        this.db
          .prepare('INSERT INTO ledger (job_id, state, updated_at) VALUES (?, ?, ?) ON CONFLICT (job_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at')
          .run(c.jobId, c.ledger, c.committedAt);
      }
      const nonce = this.db.prepare('INSERT INTO used_nonces (job_id, nonce, client_id, round) VALUES (?, ?, ?, ?)');
      for (const n of c.nonces) nonce.run(c.jobId, n.nonce, n.clientId, c.round);
      const next = c.round + 1;
      const status: JobStatus = next >= job.spec.rounds ? 'completed' : 'running';
      this.db.prepare('UPDATE jobs SET round = ?, attempt = -1, status = ?, updated_at = ? WHERE id = ?').run(next, status, c.committedAt, c.jobId);
      return this.requireJob(c.jobId);
    })();
  }

  /** Records the updates of an attempt that did not commit (a retried round), for the audit trail. */
  recordUpdates(jobId: string, round: number, updates: readonly UpdateRecord[]): void {
    this.db.transaction(() => this.insertUpdates(jobId, round, updates))();
  }

  private insertUpdates(jobId: string, round: number, updates: readonly UpdateRecord[]): void {
    const insert = this.db.prepare(
      'INSERT INTO updates (job_id, round, attempt, client_id, status, reason_code, reason_message, bytes, examples, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    for (const u of updates) {
      insert.run(jobId, round, u.attempt, u.clientId, u.status, u.reasonCode ?? null, u.reasonMessage ?? null, u.bytes, u.examples ?? null, u.receivedAt);
    }
  }

  /** Committed rounds of a job, in order. */
  rounds(jobId: string): RoundRecord[] {
    return (this.db.prepare('SELECT * FROM rounds WHERE job_id = ? ORDER BY round').all(jobId) as RoundRow[]).map(toRound);
  }

  /** Update records of a job (optionally one round), in arrival order. */
  updates(jobId: string, round?: number): StoredUpdate[] {
    const rows = (
      round === undefined
        ? this.db.prepare('SELECT * FROM updates WHERE job_id = ? ORDER BY id').all(jobId)
        : this.db.prepare('SELECT * FROM updates WHERE job_id = ? AND round = ? ORDER BY id').all(jobId, round)
    ) as Array<{ round: number; attempt: number; client_id: string | null; status: 'accepted' | 'refused'; reason_code: string | null; reason_message: string | null; bytes: number; examples: number | null; received_at: number }>;
    return rows.map((r) => ({
      round: r.round,
      attempt: r.attempt,
      clientId: r.client_id,
      status: r.status,
      ...(r.reason_code === null ? {} : { reasonCode: r.reason_code }),
      ...(r.reason_message === null ? {} : { reasonMessage: r.reason_message }),
      bytes: r.bytes,
      ...(r.examples === null ? {} : { examples: r.examples }),
      receivedAt: r.received_at,
    }));
  }

  /** Recorded refused updates of a job, counted by reason code. */
  refusalsByReason(jobId: string): Record<string, number> {
    const rows = this.db.prepare("SELECT reason_code AS code, COUNT(*) AS n FROM updates WHERE job_id = ? AND status = 'refused' GROUP BY reason_code").all(jobId) as Array<{ code: string | null; n: number }>;
    return Object.fromEntries(rows.map((r) => [r.code ?? 'unknown', r.n]));
  }

  /** The newest global state of a job, or null before it started. */
  latestState(jobId: string): StoredState | null {
    const row = this.db.prepare('SELECT round, meta, payload FROM global_states WHERE job_id = ? ORDER BY round DESC LIMIT 1').get(jobId) as
      | { round: number; meta: string; payload: Buffer }
      | undefined;
    return row === undefined ? null : { round: row.round, meta: JSON.parse(row.meta) as unknown, payload: new Uint8Array(row.payload) };
  }

  /** The privacy ledger JSON of a job, or null when nothing was accounted. */
  ledger(jobId: string): string | null {
    const row = this.db.prepare('SELECT state FROM ledger WHERE job_id = ?').get(jobId) as { state: string } | undefined;
    return row === undefined ? null : row.state;
  }

  /** Whether a committed update of the job already used this nonce. */
  isNonceUsed(jobId: string, nonce: string): boolean {
    return this.db.prepare('SELECT 1 FROM used_nonces WHERE job_id = ? AND nonce = ?').get(jobId, nonce) !== undefined;
  }
}
