/**
 * The client's state folder (`--state DIR`): everything the agent keeps between runs.
 *
 * ```
 * DIR/                 mode 0700
 *   client-keys.json   the client's Ed25519 + X25519 key pairs, mode 0600 (privacy/keys.ts)
 *   pins.json          pinned coordinator key fingerprints, mode 0600 (privacy/key-pinning.ts)
 *   enrolment.json     {coordinator, jobId, clientId} once enrolled, mode 0600
 * ```
 *
 * The keys are created on first use and never change; the enrolment record is written once the
 * coordinator has welcomed the client, so a restart of the agent re-authenticates with its
 * client id instead of spending a new enrolment token.
 */
import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { FedloraError } from '../../shared/errors.js';
import { IdSchema } from '../../shared/protocol/encoding.js';
import { readPrivateFile, writePrivateFileAtomic } from '../../privacy/key-file.js';
import { checkCoordinatorKey, coordinatorPinName, type PinStatus } from '../../privacy/key-pinning.js';
import { loadOrCreateKeys, publicKeysOf, type KeyPairs } from '../../privacy/keys.js';

export const KEYS_FILE = 'client-keys.json';
export const PINS_FILE = 'pins.json';
export const ENROLMENT_FILE = 'enrolment.json';

const EnrolmentSchema = z.strictObject({
  format: z.literal('fedlora-enrolment/1'),
  /** The coordinator's origin (scheme, host, port), as pinned. */
  coordinator: z.string().min(1),
  jobId: IdSchema,
  clientId: IdSchema,
  enrolledAt: z.string(),
});
export type EnrolmentRecord = z.infer<typeof EnrolmentSchema>;

export class StateFolder {
  private constructor(
    readonly dir: string,
    readonly keys: KeyPairs,
    /** SHA-256 fingerprint of the client's public keys (hex). */
    readonly fingerprint: string,
    /** True when this run created the keys. */
    readonly createdKeys: boolean,
  ) {}

  /**
   * Opens (creating, mode 0700) the folder and loads or creates the client's keys (mode 0600).
   * @throws FL_ERR_KEY_FILE when the key file is malformed or readable by others; FL_ERR_IO
   */
  static open(dir: string): StateFolder {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      if (process.platform !== 'win32' && (statSync(dir).mode & 0o077) !== 0) chmodSync(dir, 0o700);
    } catch (e) {
      throw new FedloraError('FL_ERR_IO', `cannot create the client state folder ${dir}: ${(e as Error).message}`, { path: dir }, { cause: e });
    }
    const { keys, created, fingerprint } = loadOrCreateKeys(join(dir, KEYS_FILE), 'client');
    return new StateFolder(dir, keys, fingerprint, created);
  }

  get pinsPath(): string {
    return join(this.dir, PINS_FILE);
  }

  /**
   * Checks a coordinator's presented keys against the pin (trust on first use) or a configured
   * fingerprint. @throws FL_ERR_KEY_CHANGED naming both fingerprints
   */
  checkCoordinator(coordinatorUrl: string, presented: { signPublicKey: Uint8Array; boxPublicKey: Uint8Array }, configuredFingerprint?: string): { fingerprint: string; status: PinStatus } {
    return checkCoordinatorKey(this.pinsPath, coordinatorUrl, presented, configuredFingerprint === undefined ? {} : { configuredFingerprint });
  }

  /** The public halves of the client's keys. */
  publicKeys(): { signPublicKey: Uint8Array; boxPublicKey: Uint8Array } {
    return publicKeysOf(this.keys);
  }

  /**
   * The enrolment for this coordinator and job, if the client enrolled before.
   * @throws FL_ERR_CLIENT_STATE when the file is malformed, or records another coordinator or job
   *   (a state folder serves one enrolment: use another --state for another job)
   */
  enrolment(coordinatorUrl: string, jobId: string | undefined): EnrolmentRecord | null {
    const path = join(this.dir, ENROLMENT_FILE);
    const text = readPrivateFile(path, 0o022);
    if (text === undefined) return null;
    let parsed: EnrolmentRecord;
    try {
      parsed = EnrolmentSchema.parse(JSON.parse(text));
    } catch (e) {
      throw new FedloraError('FL_ERR_CLIENT_STATE', `${path} is not a valid enrolment record: ${(e as Error).message.split('\n')[0]}`, { path }, { cause: e });
    }
    const origin = coordinatorPinName(coordinatorUrl);
    if (parsed.coordinator !== origin || (jobId !== undefined && parsed.jobId !== jobId)) {
      throw new FedloraError(
        'FL_ERR_CLIENT_STATE',
        `${path} records client '${parsed.clientId}' of job '${parsed.jobId}' at ${parsed.coordinator}, not ${jobId === undefined ? '' : `job '${jobId}' at `}${origin}; use another --state folder for another job`,
        { path },
      );
    }
    return parsed;
  }

  /** Records the enrolment (mode 0600, atomically). */
  saveEnrolment(coordinatorUrl: string, jobId: string, clientId: string, now = new Date()): EnrolmentRecord {
    const record: EnrolmentRecord = { format: 'fedlora-enrolment/1', coordinator: coordinatorPinName(coordinatorUrl), jobId, clientId, enrolledAt: now.toISOString() };
    writePrivateFileAtomic(join(this.dir, ENROLMENT_FILE), `${JSON.stringify(record, null, 2)}\n`);
    return record;
  }
}
