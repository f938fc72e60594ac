/**
 * The socket.io protocol between a client agent and the coordinator: one zod schema per event
 * payload, the inferred types, and the typed event maps socket.io takes as generic parameters
 * (`new Server<ClientToServerEvents, ServerToClientEvents>()`, `io<ServerToClientEvents,
 * ClientToServerEvents>()`). docs/protocol.md tells the sequence; this file is the contract.
 *
 * Sequence: connect -> client `hello` -> server `challenge` -> client `auth` -> server `welcome`;
 * then per round: server `offer` (plan + global state) -> client `update` (ack) -> server
 * `round_result`; server `round_closed` tells an unfinished client to stop; `job_end` at the end.
 * A securely aggregated round replaces `update` by four `secagg` exchanges (see below).
 * Any protocol error comes back as `refusal` with a code from shared/errors.ts.
 */
import { z } from 'zod';
import { ModuleShapeSchema, StrategyNameSchema, TrainingSpecSchema } from './job-spec.js';
import { BinarySchema, BoxPublicKeySchema, IdSchema, SignPublicKeySchema, SignatureSchema } from './encoding.js';

/** Bumped on any incompatible change; a hello with another version is refused. */
export const PROTOCOL_VERSION = 1;

/** The socket.io path and namespace the coordinator serves the protocol on. */
export const SOCKET_PATH = '/socket.io';
export const SOCKET_NAMESPACE = '/fl';

/** A coded error as it travels (HTTP bodies and socket events alike). */
export const ErrorInfoSchema = z.object({
  /** A key of ERROR_CODES (shared/errors.ts). */
  code: z.string().regex(/^FL_ERR_[A-Z0-9_]+$/),
  message: z.string(),
  /** The field at fault, when one is. */
  field: z.string().optional(),
});
export type ErrorInfo = z.infer<typeof ErrorInfoSchema>;

/** What the client's training backend is and whether its known-answer self-test passed (issue 4). */
export const BackendInfoSchema = z.strictObject({
  /** `tensorflow`, `webgpu`, `wasm` or `cpu`. */
  name: z.string().min(1).max(64),
  /** Device name as the backend reports it (GPU adapter, CPU model). */
  device: z.string().max(256),
  selfTest: z.strictObject({
    passed: z.boolean(),
    /** Largest |difference| to the cpu result, when measured. */
    maxError: z.number().optional(),
    detail: z.string().max(1024).optional(),
  }),
});
export type BackendInfo = z.infer<typeof BackendInfoSchema>;

// ---------------------------------------------------------------- client -> server

/**
 * First message after connecting. A new client presents its one-use enrolment token and the
 * Ed25519 public key it will sign with; a returning one its client id (the key must match the
 * enrolled one). Exactly one of `enrolmentToken` and `clientId`. The coordinator knows the job
 * from either, so `jobId` is only a check (refused when it names another job).
 */
export const HelloSchema = z
  .strictObject({
    protocolVersion: z.literal(PROTOCOL_VERSION),
    /** The job the client means to join; @default the token's (or the client's) job */
    jobId: IdSchema.optional(),
    /** Any length is looked up: a wrong token is FL_ERR_ENROLMENT whatever its length. */
    enrolmentToken: z.string().min(1).max(256).optional(),
    clientId: IdSchema.optional(),
    /** Ed25519 public key, base64 (32 bytes). */
    signPublicKey: SignPublicKeySchema,
    /** X25519 public key, base64, for secure aggregation's pairwise masks. @default undefined */
    boxPublicKey: BoxPublicKeySchema.optional(),
    backend: BackendInfoSchema,
    model: z.strictObject({
      /** SHA-256 (hex) of the client's base-model weights file; must equal the job's. */
      sha256: z.string().regex(/^[0-9a-fA-F]{64}$/).transform((s) => s.toLowerCase()),
      /**
       * The client's adaptable modules with their shapes (all of them: the coordinator picks those
       * the job's targetModules name, and refuses a model that lacks one).
       */
      modules: z.array(ModuleShapeSchema).max(4096).default([]),
    }),
    /** Free text such as `fedlora-client/0.1.0 node/20.20.2 linux`. @default undefined */
    agent: z.string().max(256).optional(),
  })
  .refine((h) => (h.enrolmentToken === undefined) !== (h.clientId === undefined), {
    message: 'give exactly one of enrolmentToken (first join) or clientId (returning client)',
    path: ['clientId'],
  });
export type Hello = z.infer<typeof HelloSchema>;

/** Answer to `challenge`: the Ed25519 signature of `authMessage(...)` (shared/protocol/auth.ts). */
export const AuthSchema = z.strictObject({
  signature: SignatureSchema,
});
export type Auth = z.infer<typeof AuthSchema>;

/**
 * A trained update. `envelope` is privacy/envelope.ts's sealed and signed box around a safetensors
 * payload holding exactly the plan's `updateTensors` (F32) and, in its `__metadata__`,
 * `fedlora.examples` (integer, the weight n_k) and optionally `fedlora.metrics` (JSON object of
 * numbers, e.g. {"loss": 0.4, "accuracy": 0.9}).
 */
export const UpdateSchema = z.strictObject({
  jobId: IdSchema,
  round: z.int().min(0),
  attempt: z.int().min(0),
  envelope: BinarySchema,
});
export type Update = z.infer<typeof UpdateSchema>;
/** The update as a client sends it (before the Buffer/ArrayBuffer normalisation). */
export type UpdateInput = z.input<typeof UpdateSchema>;

export const UpdateAckSchema = z.discriminatedUnion('ok', [
  z.strictObject({ ok: z.literal(true), jobId: z.string(), round: z.int() }),
  z.strictObject({ ok: z.literal(false), error: ErrorInfoSchema }),
]);
export type UpdateAck = z.infer<typeof UpdateAckSchema>;

// ---------------------------------------------------------------- server -> client

/** The coordinator's public keys; clients pin `fingerprint` (privacy/keys.ts). */
export const CoordinatorKeySchema = z.strictObject({
  signPublicKey: SignPublicKeySchema,
  boxPublicKey: BoxPublicKeySchema,
  fingerprint: z.string().min(8).max(128),
});
export type CoordinatorKey = z.infer<typeof CoordinatorKeySchema>;

/**
 * What a client must know of the job it joins, from the coordinator (never from flags): the job
 * spec is the truth.
 */
export const JobInfoSchema = z.strictObject({
  id: IdSchema,
  strategy: StrategyNameSchema,
  /** The adapter variant the strategy trains: `lora` (fedavg, flora), `ffa`, `fedsb`. */
  variant: z.enum(['lora', 'ffa', 'fedsb']),
  /** This client's LoRA rank. */
  rank: z.int().min(1),
  rounds: z.int().min(1),
  model: z.strictObject({
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    targetModules: z.array(z.string()),
    kind: z.enum(['mlp', 'llama']).optional(),
    name: z.string().optional(),
  }),
  /** The client's modules the job adapts (its targetModules applied to the hello's modules). */
  modules: z.array(ModuleShapeSchema),
});
export type JobInfo = z.infer<typeof JobInfoSchema>;

export const ChallengeSchema = z.strictObject({
  /** 32 random bytes, base64, to sign within the auth message. */
  nonce: z.string().min(40).max(48),
  coordinator: CoordinatorKeySchema,
  /** The job the hello's token (or client id) belongs to. */
  job: JobInfoSchema,
});
export type Challenge = z.infer<typeof ChallengeSchema>;

export const WelcomeSchema = z.strictObject({
  clientId: IdSchema,
  jobId: IdSchema,
  strategy: StrategyNameSchema,
  rounds: z.int(),
  /** The next round to run (the count of committed rounds). */
  round: z.int().min(0),
  /** This client's LoRA rank. */
  rank: z.int().min(1),
  status: z.enum(['pending', 'running', 'completed', 'failed']),
});
export type Welcome = z.infer<typeof WelcomeSchema>;

/** A tensor a plan asks the client to send back, with its exact shape. */
export const TensorSpecSchema = z.strictObject({
  name: z.string().min(1),
  shape: z.array(z.int().min(0)),
});
export type TensorSpec = z.infer<typeof TensorSpecSchema>;

/** What one selected client does in one round. */
export const PlanSchema = z.strictObject({
  strategy: StrategyNameSchema,
  /** `lora`: train A and B; `ffa`: A frozen, train B; `fedsb`: A and B frozen, train R (shared/adapter.ts). */
  variant: z.enum(['lora', 'ffa', 'fedsb']),
  rank: z.int().min(1),
  alpha: z.number().positive(),
  /** The modules this client trains, with its rank and alpha (FLoRA: its own rank). */
  modules: z.array(ModuleShapeSchema.extend({ rank: z.int().min(1), alpha: z.number().positive() })),
  /** The factors it trains and sends back. */
  trainable: z.array(z.enum(['A', 'B', 'R'])).min(1),
  /**
   * `global`: load the offer's state adapter and train its trainable factors from there.
   * `fresh`: add the offer's state adapter (the sum of every earlier round, possibly empty) into
   * the pristine base weights, then train a fresh LoRA (A Kaiming-uniform, B = 0) of `rank` (FLoRA).
   */
  start: z.enum(['global', 'fresh']),
  /** Exactly the tensors the update must hold (PEFT names, F32), in any order. */
  updateTensors: z.array(TensorSpecSchema),
  training: TrainingSpecSchema,
  /** Client-side DP-SGD to apply, when the job asks for it. */
  clientDp: z
    .strictObject({
      clip: z.number().positive(),
      noiseMultiplier: z.number().positive().optional(),
      targetEpsilon: z.number().positive().optional(),
      delta: z.number().optional(),
      /** Rounds in the whole job: the calibration horizon for targetEpsilon. */
      rounds: z.int().min(1),
      /**
       * The job's Fed-SB gradient-init release (a plain Gaussian, q = 1) a client may have made:
       * targetEpsilon is calibrated over it and the DP-SGD rounds together.
       */
      initReleaseNoiseMultiplier: z.number().positive().optional(),
    })
    .optional(),
  /** Seed for this client's local randomness this round (batches, fresh LoRA init). */
  seed: z.int().min(0),
  /** Strategy-specific fields (aggregation/ strategy plans), passed through as given. */
  extra: z.record(z.string(), z.unknown()).default({}),
});
export type Plan = z.infer<typeof PlanSchema>;

export const OfferSchema = z.strictObject({
  jobId: IdSchema,
  round: z.int().min(0),
  /** 0 for the first try of a round, then 1, 2... when a round below its minimum is retried. */
  attempt: z.int().min(0),
  plan: PlanSchema,
  /** Wall-clock deadline, ms since the epoch (coordinator clock). */
  deadline: z.number(),
  /** The largest envelope the coordinator accepts for this round, bytes. */
  maxUpdateBytes: z.int().min(1),
  /**
   * The adapter the plan starts from (start `global`) or merges first (start `fresh`), as a
   * safetensors file of PEFT-named F32 tensors whose `__metadata__["fedlora.layout"]` is the
   * JSON AdapterLayout (variant and modules with rank and alpha) of those tensors; no tensors
   * and no layout before FLoRA's first round.
   */
  state: BinarySchema,
  /**
   * Present when the round is securely aggregated: instead of an `update`, the client runs the
   * four `secagg` steps with these settings and sends its masked vector (docs/protocol.md).
   */
  secureAggregation: z
    .strictObject({
      /** Binds keys, masks and shares to this job, round and attempt. */
      context: z.string().min(1).max(512),
      /** The round's offered client ids, in Shamir-point order (index + 1). */
      clients: z.array(IdSchema).min(2).max(100_000),
      /** Values in each client's vector: the plan's updateTensors, flattened in order. */
      vectorLength: z.int().min(1),
      graphSeed: z.string().min(1).max(256),
      degree: z.int().min(1),
      threshold: z.int().min(1),
      minSurvivors: z.int().min(2),
      clipRange: z.number().positive(),
      quantRange: z.int().min(2),
      /** L2 clip C of the client's vector. */
      clipNorm: z.number().positive().optional(),
      /** Distributed DP: the client adds N(0, (noiseMultiplier C)^2 / minHonestClients) per coordinate. */
      noise: z.strictObject({ noiseMultiplier: z.number().positive(), minHonestClients: z.int().min(1) }).optional(),
    })
    .optional(),
  /**
   * The coordinator's Ed25519 signature (its pinned key) of the offer: job, round, attempt,
   * deadline, maxUpdateBytes and the SHA-256 of the state, the plan and the secure settings
   * (privacy/envelope.ts `offerMessage`). A client refuses an offer without a valid one
   * (FL_ERR_OFFER_SIGNATURE). Optional in the schema only so that its absence gets that code.
   */
  signature: SignatureSchema.optional(),
});
export type Offer = z.infer<typeof OfferSchema>;
export type OfferSecureAggregation = NonNullable<Offer['secureAggregation']>;
export type OfferInput = z.input<typeof OfferSchema>;

export const RoundResultSchema = z.strictObject({
  jobId: IdSchema,
  round: z.int().min(0),
  /** Valid updates aggregated. */
  participants: z.int().min(0),
  /** Aggregated metrics (example-weighted means of the clients' metrics, plus strategy figures). */
  metrics: z.record(z.string(), z.number()),
  /** Epsilon spent so far by the job (user-level), when DP is on. */
  epsilonSpent: z.number().optional(),
});
export type RoundResult = z.infer<typeof RoundResultSchema>;

/** The round this client was working on ended without its update (deadline passed, or quorum reached). */
export const RoundClosedSchema = z.strictObject({
  jobId: IdSchema,
  round: z.int().min(0),
  attempt: z.int().min(0),
  reason: z.enum(['quorum', 'deadline', 'retry', 'job_ended']),
});
export type RoundClosed = z.infer<typeof RoundClosedSchema>;

export const JobEndSchema = z.strictObject({
  jobId: IdSchema,
  status: z.enum(['completed', 'failed']),
  reason: z.string().optional(),
  rounds: z.int().min(0),
});
export type JobEnd = z.infer<typeof JobEndSchema>;

/** A coded error about the connection or a message; after an auth error the server disconnects. */
export const RefusalSchema = ErrorInfoSchema.extend({
  jobId: z.string().optional(),
  round: z.int().optional(),
});
export type Refusal = z.infer<typeof RefusalSchema>;

// ---------------------------------------------------------------- secure aggregation

/**
 * The client's secure aggregation messages, one event with the step named: `advertise` (its two
 * public keys, signed with its enrolled key), `share_keys` (sealed shares for its neighbours),
 * `masked_input` (its masked vector), `consistency` (its signature of the survivor view),
 * `unmask` (the shares it reveals). `message` is privacy/secagg/wire.ts's JSON of the step's
 * message, validated there; the ack says whether the coordinator took it.
 */
export const SECAGG_CLIENT_STEPS = ['advertise', 'share_keys', 'masked_input', 'consistency', 'unmask'] as const;
export const SecAggClientMessageSchema = z.strictObject({
  jobId: IdSchema,
  round: z.int().min(0),
  attempt: z.int().min(0),
  step: z.enum(SECAGG_CLIENT_STEPS),
  message: z.unknown(),
});
export type SecAggClientMessage = z.infer<typeof SecAggClientMessageSchema>;

export const SecAggAckSchema = z.discriminatedUnion('ok', [z.strictObject({ ok: z.literal(true) }), z.strictObject({ ok: z.literal(false), error: ErrorInfoSchema })]);
export type SecAggAck = z.infer<typeof SecAggAckSchema>;

/**
 * The coordinator's secure aggregation messages: `keys` (the live neighbours' public keys, with
 * their enrolled signing keys and signatures), `shares` (the sealed shares addressed to this
 * client), `survivors` (who is in the sum and who dropped, to sign), `unmask_request` (the same
 * view with the neighbours' signatures of it).
 */
export const SECAGG_SERVER_STEPS = ['keys', 'shares', 'survivors', 'unmask_request'] as const;
export const SecAggServerMessageSchema = z.strictObject({
  jobId: IdSchema,
  round: z.int().min(0),
  attempt: z.int().min(0),
  step: z.enum(SECAGG_SERVER_STEPS),
  message: z.unknown(),
});
export type SecAggServerMessage = z.infer<typeof SecAggServerMessageSchema>;

// ---------------------------------------------------------------- event maps

/** Events a client emits. Payloads are validated with the schemas above on arrival. */
export interface ClientToServerEvents {
  hello: (hello: z.input<typeof HelloSchema>) => void;
  auth: (auth: Auth) => void;
  update: (update: UpdateInput, ack: (result: UpdateAck) => void) => void;
  secagg: (message: SecAggClientMessage, ack: (result: SecAggAck) => void) => void;
}

/** Events the coordinator emits. */
export interface ServerToClientEvents {
  challenge: (challenge: Challenge) => void;
  welcome: (welcome: Welcome) => void;
  offer: (offer: OfferInput) => void;
  round_result: (result: RoundResult) => void;
  round_closed: (closed: RoundClosed) => void;
  job_end: (end: JobEnd) => void;
  refusal: (refusal: Refusal) => void;
  secagg: (message: SecAggServerMessage) => void;
}

/** The schema of each client event, for validation at the edge. */
export const CLIENT_EVENT_SCHEMAS = { hello: HelloSchema, auth: AuthSchema, update: UpdateSchema, secagg: SecAggClientMessageSchema } as const;

/** The schema of each server event, for clients that validate what they receive. */
export const SERVER_EVENT_SCHEMAS = {
  challenge: ChallengeSchema,
  welcome: WelcomeSchema,
  offer: OfferSchema,
  round_result: RoundResultSchema,
  round_closed: RoundClosedSchema,
  job_end: JobEndSchema,
  refusal: RefusalSchema,
  secagg: SecAggServerMessageSchema,
} as const;
