/**
 * Enrolment and authentication (shared/protocol/events.ts): hello -> challenge -> auth -> welcome.
 * The first hello carries the one-use enrolment token, later ones the client id the coordinator
 * gave; the coordinator knows the job from either and says what it is in the challenge (the job
 * spec is the truth: its modules, model hash, variant and rank come from there, never from flags).
 * The challenge's coordinator keys are checked against the pinned fingerprint before anything is
 * signed or sealed to them, and the answer is the Ed25519 signature of
 * `authMessage(job, nonce, our key)`.
 */
import { FedloraError } from '../../shared/errors.js';
import { authMessage } from '../../shared/protocol/auth.js';
import { fromBase64, toBase64 } from '../../shared/protocol/encoding.js';
import { PROTOCOL_VERSION, type Auth, type BackendInfo, type Challenge, type JobInfo } from '../../shared/protocol/events.js';
import type { HelloSchema } from '../../shared/protocol/events.js';
import type { ModuleShape } from '../../shared/protocol/job-spec.js';
import type { z } from 'zod';
import { signEd25519 } from '../../privacy/ed25519.js';
import type { PinStatus } from '../../privacy/key-pinning.js';
import type { StateFolder } from './state-folder.js';

export type HelloInput = z.input<typeof HelloSchema>;

export const AGENT_NAME = `fedlora-client/0.1.0 node/${process.versions.node} ${process.platform}`;

/** The first message on a connection: enrol with the token, or come back with the client id. */
export function buildHello(args: {
  /** A check only (the coordinator knows the job from the credential). @default undefined */
  jobId?: string;
  credential: { enrolmentToken: string } | { clientId: string };
  state: StateFolder;
  backend: BackendInfo;
  sha256: string;
  modules: readonly ModuleShape[];
}): HelloInput {
  const keys = args.state.publicKeys();
  return {
    protocolVersion: PROTOCOL_VERSION,
    ...(args.jobId !== undefined && { jobId: args.jobId }),
    ...args.credential,
    signPublicKey: toBase64(keys.signPublicKey),
    boxPublicKey: toBase64(keys.boxPublicKey),
    backend: args.backend,
    model: { sha256: args.sha256, modules: [...args.modules] },
    agent: AGENT_NAME,
  };
}

/**
 * Checks the coordinator's keys against the pin and signs the challenge.
 * @returns the auth answer, the coordinator's box key to seal updates to, and how the key was trusted
 * @throws FL_ERR_KEY_CHANGED when the coordinator presents another key than the pinned one
 */
export function answerChallenge(args: {
  challenge: Challenge;
  jobId: string;
  coordinatorUrl: string;
  state: StateFolder;
  configuredFingerprint?: string;
}): { auth: Auth; coordinatorBoxPublicKey: Uint8Array; coordinatorSignPublicKey: Uint8Array; fingerprint: string; pin: PinStatus } {
  const { challenge, state } = args;
  const presented = { signPublicKey: fromBase64(challenge.coordinator.signPublicKey), boxPublicKey: fromBase64(challenge.coordinator.boxPublicKey) };
  const { fingerprint, status } = state.checkCoordinator(args.coordinatorUrl, presented, args.configuredFingerprint);
  const ours = toBase64(state.publicKeys().signPublicKey);
  const signature = signEd25519(authMessage(args.jobId, challenge.nonce, ours), state.keys.sign.secretKey);
  if (signature.length !== 64) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', 'Ed25519 signature must be 64 bytes');
  return { auth: { signature: toBase64(signature) }, coordinatorBoxPublicKey: presented.boxPublicKey, coordinatorSignPublicKey: presented.signPublicKey, fingerprint, pin: status };
}

/**
 * Checks the job the coordinator says this client joins against what the client holds, before it
 * answers the challenge (so a refusal here spends no enrolment token).
 * @param expected.jobId the job the user named (`--job`) or the state folder recorded, if any
 * @throws FL_ERR_ENROLMENT when the job is not the one named; FL_ERR_BASE_MODEL_MISMATCH when the
 *   model hash, family or modules do not fit the job
 */
export function checkJobInfo(job: JobInfo, expected: { jobId?: string; sha256: string; kind: string; adaptable: readonly ModuleShape[] }): void {
  if (expected.jobId !== undefined && job.id !== expected.jobId) {
    throw new FedloraError('FL_ERR_ENROLMENT', `the coordinator puts this client in job '${job.id}', but job '${expected.jobId}' was asked for (--job, or the state folder's enrolment)`, { field: 'jobId' });
  }
  if (job.model.sha256 !== expected.sha256.toLowerCase()) {
    throw new FedloraError('FL_ERR_BASE_MODEL_MISMATCH', `job '${job.id}' trains on the base model with SHA-256 ${job.model.sha256}; --model has ${expected.sha256}`, { field: 'model.sha256' });
  }
  if (job.model.kind !== undefined && job.model.kind !== expected.kind) {
    throw new FedloraError('FL_ERR_BASE_MODEL_MISMATCH', `job '${job.id}' is for a ${job.model.kind} model; --model holds a ${expected.kind}`, { field: 'model.kind' });
  }
  for (const m of job.modules) {
    const ours = expected.adaptable.find((a) => a.path === m.path);
    if (ours === undefined || ours.outFeatures !== m.outFeatures || ours.inFeatures !== m.inFeatures) {
      throw new FedloraError('FL_ERR_BASE_MODEL_MISMATCH', `job '${job.id}' adapts module '${m.path}' [${m.outFeatures}, ${m.inFeatures}], which this model ${ours === undefined ? 'does not have' : `has as [${ours.outFeatures}, ${ours.inFeatures}]`}`, { field: 'model.modules' });
    }
  }
  // The mlp's LoRA model adapts every dense layer (client/agent/base-model.ts): a job naming fewer
  // could not be trained; say so now rather than at the first round.
  if (expected.kind === 'mlp' && job.modules.length !== expected.adaptable.length) {
    throw new FedloraError('FL_ERR_BASE_MODEL_MISMATCH', `the mlp adapts every dense layer (${expected.adaptable.map((m) => m.path).join(', ')}); job '${job.id}' names ${job.modules.map((m) => m.path).join(', ')}: its targetModules must name all of them`, { field: 'model.modules' });
  }
}

/** The job as one log line. */
export function describeJob(job: JobInfo): string {
  return `job ${job.id}: ${job.strategy} (${job.variant}), rank ${job.rank}, ${job.rounds} rounds, LoRA on ${job.model.targetModules.join(', ')} (${job.modules.length} modules)`;
}

/** The client backend (client/backend.ts) as the hello reports it. */
export function backendForHello(info: { name: string; device: string; selfTest: { ok: boolean; maxError: number; reason?: string } }): BackendInfo {
  return {
    name: info.name,
    device: info.device.slice(0, 256),
    selfTest: {
      passed: info.selfTest.ok,
      ...(Number.isFinite(info.selfTest.maxError) && { maxError: info.selfTest.maxError }),
      ...(info.selfTest.reason !== undefined && { detail: info.selfTest.reason.slice(0, 1024) }),
    },
  };
}
