/**
 * Enrolment and authentication (shared/protocol/events.ts): hello -> challenge -> auth -> welcome.
 * The first hello carries the one-use enrolment token, later ones the client id the coordinator
 * gave; the challenge's coordinator keys are checked against the pinned fingerprint before
 * anything is signed or sealed to them, and the answer is the Ed25519 signature of
 * `authMessage(job, nonce, our key)`.
 */
import { FedloraError } from '../../shared/errors.js';
import { authMessage } from '../../shared/protocol/auth.js';
import { fromBase64, toBase64 } from '../../shared/protocol/encoding.js';
import { PROTOCOL_VERSION, type Auth, type BackendInfo, type Challenge } from '../../shared/protocol/events.js';
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
  jobId: string;
  credential: { enrolmentToken: string } | { clientId: string };
  state: StateFolder;
  backend: BackendInfo;
  sha256: string;
  modules: readonly ModuleShape[];
}): HelloInput {
  const keys = args.state.publicKeys();
  return {
    protocolVersion: PROTOCOL_VERSION,
    jobId: args.jobId,
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
}): { auth: Auth; coordinatorBoxPublicKey: Uint8Array; fingerprint: string; pin: PinStatus } {
  const { challenge, state } = args;
  const presented = { signPublicKey: fromBase64(challenge.coordinator.signPublicKey), boxPublicKey: fromBase64(challenge.coordinator.boxPublicKey) };
  const { fingerprint, status } = state.checkCoordinator(args.coordinatorUrl, presented, args.configuredFingerprint);
  const ours = toBase64(state.publicKeys().signPublicKey);
  const signature = signEd25519(authMessage(args.jobId, challenge.nonce, ours), state.keys.sign.secretKey);
  if (signature.length !== 64) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', 'Ed25519 signature must be 64 bytes');
  return { auth: { signature: toBase64(signature) }, coordinatorBoxPublicKey: presented.boxPublicKey, fingerprint, pin: status };
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
