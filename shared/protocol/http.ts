/**
 * Bodies of the coordinator's HTTP API (docs/protocol.md, "HTTP API"). Requests are validated
 * with these schemas; responses are typed by them, and tests parse responses with them.
 */
import { z } from 'zod';
import { BackendInfoSchema, ErrorInfoSchema } from './events.js';
import { JobSpecSchema } from './job-spec.js';

/** Every error response: `{"error": {"code": "FL_ERR_...", "message": "...", "field"?: "..."}}`. */
export const ErrorBodySchema = z.strictObject({ error: ErrorInfoSchema });
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

/** `POST /api/jobs` takes a job spec (job-spec.ts) and answers `{"id": ...}` (201). */
export const CreateJobRequestSchema = JobSpecSchema;
export const CreateJobResponseSchema = z.strictObject({ id: z.string() });
export type CreateJobResponse = z.infer<typeof CreateJobResponseSchema>;

export const JobStatusSchema = z.enum(['pending', 'running', 'completed', 'failed']);
export type JobStatus = z.infer<typeof JobStatusSchema>;

/** One committed round as the API shows it. */
export const RoundViewSchema = z.strictObject({
  round: z.int(),
  /** How many tries the round took (1 unless it was retried below its minimum). */
  attempts: z.int(),
  participants: z.array(z.string()),
  metrics: z.record(z.string(), z.number()),
  /** ms since the epoch. */
  startedAt: z.number(),
  committedAt: z.number(),
  /** Updates accepted and refused in the committed attempt. */
  accepted: z.int(),
  refused: z.int(),
  /** How the round was securely aggregated; null for a plain round (the coordinator saw each update). */
  secureAggregation: z
    .strictObject({
      /** Clients whose masked vectors are in the sum. */
      survivors: z.int(),
      /** Offered clients that dropped out before their masked vector arrived. */
      droppedClients: z.int(),
      /** Clients in the sum that left before the unmasking step: their masks were rebuilt from the others' shares. */
      droppedAtUnmasking: z.int(),
      /** Revealed shares that failed their commitments (left out). */
      badShares: z.int(),
      /** Bound on |average - true average| per coordinate from quantisation. */
      errorBound: z.number(),
      /** Distributed DP: the noise multiplier the sum carries after dropouts (booked in the ledger). */
      noiseMultiplier: z.number().optional(),
    })
    .nullable(),
});
export type RoundView = z.infer<typeof RoundViewSchema>;

export const PrivacyViewSchema = z.strictObject({
  /** User-level epsilon spent by the job so far (null when no coordinator-side DP). */
  epsilon: z.number().nullable(),
  delta: z.number().nullable(),
  /** The budget's epsilon, when set. */
  budgetEpsilon: z.number().nullable(),
  /** Rounds accounted. */
  rounds: z.int(),
  /**
   * What the job's account booked, in order (consecutive equal mechanisms merged): the sampling
   * rate q of the rounds' client draw and the noise multiplier actually charged.
   */
  booked: z.array(z.strictObject({ q: z.number(), noiseMultiplier: z.number(), rounds: z.int() })).default([]),
  /** Why the last booked round has its q (e.g. "q = 1: ... no subsample"); null before any. */
  sampling: z.string().nullable().default(null),
});
export type PrivacyView = z.infer<typeof PrivacyViewSchema>;

/** `GET /api/jobs/:id`. */
export const JobViewSchema = z.strictObject({
  id: z.string(),
  status: JobStatusSchema,
  /** Why the job failed; present only when status is `failed`. */
  reason: z.string().optional(),
  /** Committed rounds so far (= the index of the next round to run). */
  round: z.int(),
  rounds: z.int(),
  strategy: z.string(),
  createdAt: z.number(),
  spec: z.unknown(),
  roundsDetail: z.array(RoundViewSchema),
  privacy: PrivacyViewSchema,
  /** Clients enrolled in the job. */
  clients: z.int(),
  /** Each enrolled client: its backend report and whether it is connected now. */
  clientList: z.array(
    z.strictObject({
      id: z.string(),
      enrolmentIndex: z.int(),
      backend: BackendInfoSchema,
      agent: z.string().nullable(),
      /** ms since the epoch. */
      enrolledAt: z.number(),
      lastSeenAt: z.number(),
      connected: z.boolean(),
    }),
  ),
});
export type JobView = z.infer<typeof JobViewSchema>;

/** `GET /api/jobs`: a summary per job, newest first. */
export const JobListSchema = z.strictObject({
  jobs: z.array(z.strictObject({ id: z.string(), status: JobStatusSchema, round: z.int(), rounds: z.int(), strategy: z.string(), createdAt: z.number() })),
});
export type JobList = z.infer<typeof JobListSchema>;

/** `POST /api/jobs/:id/enrolments` body (may be empty). */
export const EnrolmentRequestSchema = z.strictObject({
  /** Seconds the token stays valid. @default 86400 (one day) */
  expiresInSeconds: z.int().min(1).max(365 * 24 * 3600).default(86_400),
});
export type EnrolmentRequest = z.infer<typeof EnrolmentRequestSchema>;

export const EnrolmentResponseSchema = z.strictObject({
  /** One-use token: the client presents it once, in its first hello. */
  token: z.string(),
  jobId: z.string(),
  /** ms since the epoch. */
  expiresAt: z.number(),
});
export type EnrolmentResponse = z.infer<typeof EnrolmentResponseSchema>;

/**
 * `GET /api/jobs/:id/adapter?rank=R`: FLoRA only, compress the accumulated adapter to rank R
 * (truncated SVD); the response header `x-fedlora-compression-error` gives the relative error.
 */
export const AdapterQuerySchema = z.strictObject({
  /** @default undefined (no compression) */
  rank: z.coerce.number().int().min(1).max(65_536).optional(),
});

/** `GET /healthz`. */
export const HealthSchema = z.strictObject({
  status: z.literal('ok'),
  /** Seconds since start. */
  uptime: z.number(),
  /** The coordinator's key fingerprint, for clients to pin. */
  fingerprint: z.string(),
});
export type Health = z.infer<typeof HealthSchema>;

/** `POST /join/job` body: the enrolment token of a `/join#token=...` link (in the body, never in a URL). */
export const JoinJobRequestSchema = z.strictObject({ token: z.string().min(1).max(256) });
export type JoinJobRequest = z.infer<typeof JoinJobRequestSchema>;

/**
 * `POST /join/job`: what the join page shows before the data owner joins, looked up from the
 * enrolment token without spending it. Public (no admin token), rate-limited.
 */
export const JoinJobSchema = z.strictObject({
  jobId: z.string(),
  status: JobStatusSchema,
  strategy: z.string(),
  /** Committed rounds and rounds to run. */
  round: z.int(),
  rounds: z.int(),
  clientsPerRound: z.int(),
  rank: z.int(),
  model: z.strictObject({ sha256: z.string(), targetModules: z.array(z.string()), name: z.string().nullable(), kind: z.string().nullable() }),
  /** The privacy target: client DP-SGD, coordinator-side user-level DP, the budget, secure aggregation. */
  privacy: z.strictObject({
    client: z.strictObject({ clip: z.number(), noiseMultiplier: z.number().nullable(), targetEpsilon: z.number().nullable() }).nullable(),
    user: z.strictObject({ noiseMultiplier: z.number(), clip: z.number() }).nullable(),
    budget: z.strictObject({ epsilon: z.number(), delta: z.number() }).nullable(),
    secureAggregation: z.boolean(),
  }),
  /** The token itself: `valid` (unused, not expired), `used` or `expired`. */
  token: z.strictObject({ status: z.enum(['valid', 'used', 'expired']), expiresAt: z.number() }),
});
export type JoinJob = z.infer<typeof JoinJobSchema>;
