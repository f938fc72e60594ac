/**
 * Every error fedlora raises has a code from this one table (docs/architecture.md, "Conventions"), pinned by
 * test/shared/errors.test.ts. Add a code by adding one line in the section of your folder;
 * never reuse or renumber a code that has shipped.
 */
export const ERROR_CODES = {
  // --- shared/: arguments, configs, tensors, safetensors, adapters
  FL_ERR_INVALID_ARGUMENT: 'An argument or option is invalid',
  FL_ERR_INVALID_CONFIG: 'A configuration failed validation',
  FL_ERR_SHAPE_MISMATCH: 'Tensor shapes do not agree',
  FL_ERR_SAFETENSORS_TRUNCATED: 'A safetensors file ends before its header or data do',
  FL_ERR_SAFETENSORS_HEADER: 'A safetensors header is malformed',
  FL_ERR_SAFETENSORS_OFFSETS: 'Safetensors data offsets overlap, leave gaps, or fall outside the file',
  FL_ERR_SAFETENSORS_DTYPE: 'A safetensors tensor has a dtype fedlora does not read',
  FL_ERR_SAFETENSORS_MISSING_TENSOR: 'A safetensors file has no tensor of the requested name',
  FL_ERR_ADAPTER_LAYOUT: 'An adapter does not match its layout',
  FL_ERR_ADAPTER_DIR: 'A PEFT adapter directory is missing files or is malformed',
  FL_ERR_IO: 'A file could not be read or written',
  // --- aggregation/
  FL_ERR_UNKNOWN_STRATEGY: 'No strategy is registered under this name',
  FL_ERR_AGGREGATION_INPUT: 'A client update cannot be aggregated with the others',
  FL_ERR_NO_UPDATES: 'A round was aggregated with no updates',
  FL_ERR_FROZEN_MISMATCH: 'A frozen factor (A, or A and B) differs from the global one',
  FL_ERR_NOT_A_SUM: 'The strategy aggregate is not a sum, so this wrapper cannot apply',
  // --- privacy/
  FL_ERR_PRIVACY_ARGUMENT: 'A privacy parameter is out of range',
  FL_ERR_BUDGET_EXCEEDED: 'The round would exceed the privacy budget',
  FL_ERR_LEDGER_STATE: 'A privacy ledger state is malformed or has no such account',
  FL_ERR_ENVELOPE_MALFORMED: 'An update envelope is malformed',
  FL_ERR_ENVELOPE_DECRYPT: 'An update envelope could not be decrypted (tampered or wrong key)',
  FL_ERR_ENVELOPE_SIGNATURE: 'An update envelope signature is invalid or missing',
  FL_ERR_ENVELOPE_BINDING: 'An update envelope is bound to another job, round or client',
  FL_ERR_ENVELOPE_REPLAY: 'An update envelope reuses a nonce',
  FL_ERR_KEY_CHANGED: 'The coordinator key differs from the pinned fingerprint',
  FL_ERR_KEY_FILE: 'A key file is missing, malformed or has unsafe permissions',
  FL_ERR_OFFER_SIGNATURE: 'An offer is unsigned, or its signature does not verify with the pinned coordinator key',
  FL_ERR_SECAGG_CONFIG: 'A secure aggregation setting is out of range',
  FL_ERR_SECAGG_PROTOCOL: 'A secure aggregation message does not fit the protocol step',
  FL_ERR_SECAGG_DROPOUTS: 'Too many clients dropped out for secure aggregation to recover the sum',
  FL_ERR_SECAGG_BAD_SHARE: 'A secure aggregation key, share or commitment is inconsistent',
  FL_ERR_SECAGG_IDENTITY: "A secure aggregation peer's keys are not signed by its enrolled (pinned) signing key",
  FL_ERR_SECAGG_INCONSISTENT: 'The coordinator showed secure aggregation clients different survivor sets (consistency check failed)',
  // --- client/
  FL_ERR_BACKEND: 'No usable TensorFlow.js backend, or the requested one failed its self-test',
  FL_ERR_MODEL_CONFIG: 'A model config.json is missing or invalid',
  FL_ERR_CHECKPOINT: 'A model checkpoint does not match its config',
  FL_ERR_DATA: 'A data file has a malformed line or field',
  FL_ERR_TRAINING: 'Training failed',
  FL_ERR_CONNECTION: 'The client could not reach the coordinator, or gave up reconnecting',
  FL_ERR_CLIENT_STATE: 'A client state folder is malformed or belongs to another coordinator or job',
  // --- coordinator/
  FL_ERR_NOT_FOUND: 'The requested resource does not exist',
  FL_ERR_UNAUTHORIZED: 'Missing or wrong credentials',
  FL_ERR_ENROLMENT: 'An enrolment token is unknown, used or expired',
  FL_ERR_UPDATE_REFUSED: 'An update was refused',
  FL_ERR_ROUND_STATE: 'The message does not fit the state of the round',
  FL_ERR_JOB_FAILED: 'A job failed',
  FL_ERR_STORE: 'The store failed',
  FL_ERR_BODY_TOO_LARGE: 'A request body or message is larger than the limit',
  FL_ERR_RATE_LIMITED: 'Too many requests from this address; retry later',
  FL_ERR_BASE_MODEL_MISMATCH: 'The client base model (SHA-256 or modules) differs from the job',
  FL_ERR_UPDATE_TOO_LARGE: 'An update is larger than the round accepts',
  FL_ERR_UPDATE_TENSORS: 'An update lacks a tensor the plan asks for, or has one it does not',
  FL_ERR_UPDATE_DTYPE: 'An update tensor is not F32',
  FL_ERR_UPDATE_NOT_FINITE: 'An update tensor holds NaN or Infinity',
  FL_ERR_UPDATE_METADATA: 'An update lacks a valid example count or metrics',
  FL_ERR_ADDRESS_IN_USE: 'The address (host and port) the coordinator should listen on is already in use',
  FL_ERR_INTERNAL: 'An unexpected failure inside the coordinator (a bug: please report it)',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * The one error class of the project: a code from ERROR_CODES plus a message that names what is wrong.
 * `message` is `"<code>: <reason>"`; `reason` is the same text without the code prefix, for replies
 * and logs that carry the code in a field of its own. A FedloraError that rewraps a caught error
 * passes it as `{ cause }` (ES2022), so the original message and stack stay on the chain.
 *
 * @param code - the code from ERROR_CODES
 * @param reason - what is wrong, naming the argument or file and the rule
 * @param details - structured fields for logs and replies (e.g. `field`, `path`)
 * @param options - `{ cause }`: the error this one rewraps
 */
export class FedloraError extends Error {
  readonly code: ErrorCode;
  readonly reason: string;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, reason: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(`${code}: ${reason}`, options);
    this.name = 'FedloraError';
    this.code = code;
    this.reason = reason;
    this.details = details;
  }
}

/**
 * What went wrong, without a code prefix: a FedloraError's `reason` (or another error's own
 * `reason`, e.g. the agent's RoundAborted), else the message; for messages that carry the code in a
 * field of their own, such as a worker thread's error reply.
 */
export function reasonOf(e: unknown): string {
  const reason = (e as { reason?: unknown } | null)?.reason;
  if (typeof reason === 'string') return reason;
  return e instanceof Error ? e.message : String(e);
}

export function isFedloraError(e: unknown, code?: ErrorCode): e is FedloraError {
  return e instanceof FedloraError && (code === undefined || e.code === code);
}
