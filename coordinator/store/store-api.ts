/**
 * The coordinator's persistent record behind one asynchronous interface: jobs, enrolment tokens,
 * clients, committed rounds, per-client update records, global states, the privacy ledger and used
 * nonces. Two implementations: SQLite, one file, embedded (sqlite-store.ts, the default), and
 * PostgreSQL, shared by several coordinator nodes (postgres-store.ts); openStore (store.ts) picks one
 * by the location. Both pass one contract suite (test/coordinator/store/store-contract.ts).
 *
 * Every read-modify-write the engine needs is ONE method here, run as one transaction in the
 * database, so two callers (two async tasks of one process, or two nodes) never interleave between
 * a read and the write that depends on it. The method that matters most, `commitRound`, writes the
 * round record, every update record, the next global state, the ledger and the used nonces together
 * or not at all, so a coordinator killed at any moment reopens on the last committed round
 * (docs/architecture.md, "One round, end to end", step 7).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { JobSpec, ModuleShape } from '../../shared/protocol/job-spec.js';
import type { BackendInfo } from '../../shared/protocol/events.js';
import type { JobStatus } from '../../shared/protocol/http.js';

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
  /**
   * Several nodes (PostgreSQL): the job lease the committing node drives the job under
   * (coordinator/cluster/job-lease.ts). The commit checks it in its own transaction and is refused
   * (FL_ERR_ROUND_STATE, nothing written) when another node has taken the lease since. Unused on
   * SQLite (one node). @default undefined (no lease check)
   */
  readonly lease?: { readonly nodeId: string; readonly epoch: number };
}

export interface NewClient {
  readonly signPublicKey: string;
  readonly boxPublicKey?: string;
  readonly backend: BackendInfo;
  readonly agent?: string;
}

/** A random id with a readable prefix: `job_` + 16 base64url characters (96 bits). */
export function newId(prefix: string): string {
  return `${prefix}_${randomBytes(12).toString('base64url')}`;
}

/** A fresh enrolment token: 43 base64url characters (256 bits). */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/** SHA-256 hex of a token: tokens are stored only hashed, so a copy of the database enrols no one. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Which database a Store is on. */
export type StoreKind = 'sqlite' | 'postgres';

/**
 * The store. Every method that touches the database returns a Promise; a method that checks and
 * then writes does both in one transaction.
 */
export interface Store {
  readonly kind: StoreKind;
  /** Where it is: the SQLite file path, or the PostgreSQL URL without its password. */
  readonly location: string;
  /** Closes the database (SQLite) or ends the connection pool (PostgreSQL). Idempotent. */
  close(): Promise<void>;
  /** False once closed. */
  isOpen(): boolean;
  /** Versions of the applied migrations, ascending. */
  schemaVersions(): Promise<number[]>;

  // ------------------------------------------------------------------ jobs
  createJob(spec: JobSpec, now?: number): Promise<JobRecord>;
  getJob(id: string): Promise<JobRecord | null>;
  /** The job, or FL_ERR_NOT_FOUND naming it. */
  requireJob(id: string): Promise<JobRecord>;
  /** Every job, newest first. */
  listJobs(): Promise<JobRecord[]>;
  /** Jobs the engine must drive after a start or restart, oldest first. */
  activeJobs(): Promise<JobRecord[]>;
  /** @throws FL_ERR_NOT_FOUND when there is no such job */
  setJobStatus(id: string, status: JobStatus, reason?: string | null, now?: number): Promise<void>;
  /**
   * Fixes the job's adapted modules and its initial global state (state 0), and marks it running,
   * in one transaction.
   * @param ledger the privacy ledger JSON to store with it (Fed-SB's init gradient release)
   * @throws FL_ERR_ROUND_STATE when the job is not pending or already has a state
   */
  startJob(id: string, layout: readonly ModuleShape[], initial: StateBlob, now?: number, ledger?: string): Promise<void>;
  /**
   * Starts a new attempt of the job's next round and returns its number (0, 1, 2...). Persisted
   * before any offer goes out, so after a restart the round resumes under a fresh attempt number
   * and envelopes sealed for an attempt that never committed fail their binding (no replay into
   * the resumed round). Two concurrent calls get two different numbers.
   */
  beginAttempt(jobId: string, now?: number): Promise<number>;

  // ------------------------------------------------------------------ enrolment and clients
  /**
   * Makes a one-use enrolment token for a job; only its SHA-256 is stored. Its token index is its
   * creation index in the job, also under concurrent calls.
   * @returns the token (43 base64url characters, 256 bits)
   */
  createEnrolmentToken(jobId: string, expiresAt: number, now?: number): Promise<string>;
  /**
   * The job an enrolment token was made for, without spending it (a hello names no job: the
   * coordinator knows it from the token). `enrolClient` reports used or expired tokens.
   * @returns null when no job has this token
   */
  enrolmentTokenJob(token: string): Promise<{ jobId: string; tokenIndex: number } | null>;
  /**
   * An enrolment token's job, expiry and whether it was used, without spending it (the join page
   * shows the job before the data owner joins).
   * @returns null when no job has this token
   */
  enrolmentTokenInfo(token: string): Promise<{ jobId: string; expiresAt: number; used: boolean } | null>;
  /**
   * Spends a token and enrols a client with its public key, in one transaction: of two concurrent
   * claims of one token exactly one succeeds.
   * @throws FL_ERR_ENROLMENT when the token is unknown, for another job, used or expired, or the key is already enrolled
   */
  enrolClient(jobId: string, token: string, client: NewClient, now?: number): Promise<ClientRecord>;
  getClient(id: string): Promise<ClientRecord | null>;
  clientByKey(jobId: string, signPublicKey: string): Promise<ClientRecord | null>;
  /** Clients of a job in enrolment order. */
  clientsOfJob(jobId: string): Promise<ClientRecord[]>;
  /** Records a returning client's latest backend report and contact time. */
  touchClient(id: string, backend: BackendInfo, agent: string | undefined, now?: number): Promise<void>;

  // ------------------------------------------------------------------ rounds
  /**
   * Commits one round: the round record, the update records, the next global state, the ledger,
   * the used nonces, and the job's round counter (and `completed` after its last round), in ONE
   * transaction. A nonce already used by another client or round refuses the whole commit.
   * @returns the job after the commit
   * @throws FL_ERR_ROUND_STATE when the job is not running or `round` is not its next round (a
   *   stale or duplicated commit, or another node committed it first); FL_ERR_ENVELOPE_REPLAY when
   *   a nonce was used before; nothing is written then
   */
  commitRound(c: RoundCommit): Promise<JobRecord>;
  /** Records the updates of an attempt that did not commit (a retried round), for the audit trail, in one transaction. */
  recordUpdates(jobId: string, round: number, updates: readonly UpdateRecord[]): Promise<void>;
  /** Committed rounds of a job, in order. */
  rounds(jobId: string): Promise<RoundRecord[]>;
  /** Update records of a job (optionally one round), in arrival order. */
  updates(jobId: string, round?: number): Promise<StoredUpdate[]>;
  /** Recorded refused updates of a job, counted by reason code. */
  refusalsByReason(jobId: string): Promise<Record<string, number>>;
  /** The newest global state of a job, or null before it started. */
  latestState(jobId: string): Promise<StoredState | null>;
  /** The privacy ledger JSON of a job, or null when nothing was accounted. */
  ledger(jobId: string): Promise<string | null>;
  /** Whether this nonce of the job was used (claimed by `useNonce` or committed). */
  isNonceUsed(jobId: string, nonce: string): Promise<boolean>;
  /**
   * Claims a nonce for a client's update of a round, atomically: true when it was new, false when
   * it was used before (the envelope is a replay). Of two concurrent claims, on one node or two,
   * exactly one gets true. A later `commitRound` of the same round by the same client accepts it.
   */
  useNonce(jobId: string, nonce: string, clientId: string, round: number): Promise<boolean>;
}
