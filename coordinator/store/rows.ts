/**
 * What the two stores share besides the interface: row shapes and their mapping to records (same
 * column names on both; postgres-store.ts parses BIGINT to number), and the checks and errors of
 * the transactions, so SQLite and PostgreSQL refuse alike.
 */
import { FedloraError } from '../../shared/errors.js';
import type { JobSpec, ModuleShape } from '../../shared/protocol/job-spec.js';
import type { BackendInfo } from '../../shared/protocol/events.js';
import type { JobStatus } from '../../shared/protocol/http.js';
import type { ClientRecord, JobRecord, RoundCommit, RoundRecord, StoredUpdate } from './store-api.js';

export interface JobRow {
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

export interface ClientRow {
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

export interface RoundRow {
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

export interface UpdateRow {
  round: number;
  attempt: number;
  client_id: string | null;
  status: 'accepted' | 'refused';
  reason_code: string | null;
  reason_message: string | null;
  bytes: number;
  examples: number | null;
  received_at: number;
}

export function toJob(row: JobRow): JobRecord {
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

export function toClient(row: ClientRow): ClientRecord {
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

export function toRound(row: RoundRow): RoundRecord {
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

export function toUpdate(r: UpdateRow): StoredUpdate {
  return {
    round: r.round,
    attempt: r.attempt,
    clientId: r.client_id,
    status: r.status,
    ...(r.reason_code === null ? {} : { reasonCode: r.reason_code }),
    ...(r.reason_message === null ? {} : { reasonMessage: r.reason_message }),
    bytes: r.bytes,
    ...(r.examples === null ? {} : { examples: r.examples }),
    receivedAt: r.received_at,
  };
}

/** The checks commitRound makes before writing, shared by both stores so they refuse alike. */
export function checkCommit(job: JobRecord, c: RoundCommit): void {
  if (job.status !== 'running') throw new FedloraError('FL_ERR_ROUND_STATE', `job '${c.jobId}' is ${job.status}; round ${c.round} cannot commit`, { jobId: c.jobId });
  if (job.round !== c.round) {
    throw new FedloraError('FL_ERR_ROUND_STATE', `job '${c.jobId}' expects round ${job.round} next, not ${c.round}`, { jobId: c.jobId, round: c.round });
  }
}

export function replayError(jobId: string, nonce: string, round: number): FedloraError {
  return new FedloraError('FL_ERR_ENVELOPE_REPLAY', `job '${jobId}': nonce ${nonce} of round ${round} was used before by another client or round; the round does not commit`, { jobId, round });
}

export function notFound(id: string): FedloraError {
  return new FedloraError('FL_ERR_NOT_FOUND', `no job '${id}'`, { jobId: id });
}

export interface TokenRow {
  job_id: string;
  expires_at: number;
  used_at: number | null;
  token_index: number;
}

/** The checks enrolClient makes on a token row, shared by both stores. */
export function checkToken(jobId: string, row: TokenRow | undefined, now: number): asserts row is TokenRow {
  if (row === undefined || row.job_id !== jobId) throw new FedloraError('FL_ERR_ENROLMENT', `enrolment token is not one of job '${jobId}'`, { jobId });
  if (row.used_at !== null) throw new FedloraError('FL_ERR_ENROLMENT', 'enrolment token was already used; ask the job owner for a new one', { jobId });
  if (row.expires_at <= now) throw new FedloraError('FL_ERR_ENROLMENT', `enrolment token expired at ${new Date(row.expires_at).toISOString()}`, { jobId });
}

export function keyEnrolled(jobId: string): FedloraError {
  return new FedloraError('FL_ERR_ENROLMENT', `this public key is already enrolled in job '${jobId}'; reconnect with its clientId`, { jobId });
}
