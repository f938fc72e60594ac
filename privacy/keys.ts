/**
 * Long-term key pairs of the coordinator and of clients, and their fingerprints.
 *
 * Each party holds an Ed25519 pair (nacl.sign: the client signs its updates and its auth reply,
 * the coordinator may sign what it publishes) and an X25519 pair (nacl.box: updates are sealed to
 * the coordinator's; a client's serves secure aggregation's pairwise keys). The pair is created
 * once, persisted as JSON in a file of mode 0600, and a file that others can read is refused.
 * A fingerprint, SHA-256 over both public keys, is what clients pin (privacy/key-pinning.ts).
 */
import { createHash } from 'node:crypto';
import nacl from 'tweetnacl';
import { z } from 'zod';
import { FedloraError } from '../shared/errors.js';
import { base64Bytes, fromBase64, toBase64 } from '../shared/protocol/encoding.js';
import { createPrivateFileOnce, readPrivateFile } from './key-file.js';

/** Whose keys a file holds; a coordinator never loads a client's file by mistake, nor the reverse. */
export type KeyOwner = 'coordinator' | 'client';

/** A party's two key pairs. */
export interface KeyPairs {
  readonly sign: nacl.SignKeyPair;
  readonly box: nacl.BoxKeyPair;
}

/** The public halves, which is what others see and what a fingerprint covers. */
export interface PublicKeys {
  readonly signPublicKey: Uint8Array;
  readonly boxPublicKey: Uint8Array;
}

const KEY_FILE_FORMAT = 'fedlora-keys/1';
const FINGERPRINT_DOMAIN = 'fedlora-key-fingerprint-v1\n';

const KeyFileSchema = z.strictObject({
  format: z.literal(KEY_FILE_FORMAT),
  owner: z.enum(['coordinator', 'client']),
  createdAt: z.string(),
  signPublicKey: base64Bytes(32, 'signPublicKey'),
  signSecretKey: base64Bytes(64, 'signSecretKey'),
  boxPublicKey: base64Bytes(32, 'boxPublicKey'),
  boxSecretKey: base64Bytes(32, 'boxSecretKey'),
});

/** Fresh key pairs from tweetnacl's CSPRNG (node:crypto's randomBytes under Node). */
export function generateKeyPairs(): KeyPairs {
  return { sign: nacl.sign.keyPair(), box: nacl.box.keyPair() };
}

export function publicKeysOf(keys: KeyPairs): PublicKeys {
  return { signPublicKey: keys.sign.publicKey, boxPublicKey: keys.box.publicKey };
}

/**
 * The fingerprint of a party's public keys: SHA-256("fedlora-key-fingerprint-v1\n" || sign public
 * key || box public key), as 64 lowercase hex digits. Both keys are covered, so neither can be
 * swapped under a pinned fingerprint.
 */
export function fingerprintOf(keys: PublicKeys): string {
  if (keys.signPublicKey.length !== 32 || keys.boxPublicKey.length !== 32) {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `public keys must be 32 bytes each, got sign ${keys.signPublicKey.length} and box ${keys.boxPublicKey.length}`);
  }
  return createHash('sha256').update(FINGERPRINT_DOMAIN).update(keys.signPublicKey).update(keys.boxPublicKey).digest('hex');
}

/** A fingerprint for people to read and compare: 16 groups of 4 hex digits joined by ':'. */
export function formatFingerprint(fingerprint: string): string {
  return normalizeFingerprint(fingerprint).match(/.{4}/g)!.join(':');
}

/**
 * Accepts a fingerprint as people write it (any case, grouped with ':', spaces or '-', with or
 * without a "SHA256:" prefix) and returns the 64-hex-digit form.
 * @param field the config field or option it came from, for the error message
 * @throws FL_ERR_INVALID_ARGUMENT when it is not 64 hex digits
 */
export function normalizeFingerprint(text: string, field = 'fingerprint'): string {
  const hex = String(text).trim().replace(/^sha256:/i, '').replace(/[\s:-]/g, '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `${field} must be 64 hex digits (a SHA-256, groups separated by ':' allowed), got '${text}'`, { field });
  }
  return hex;
}

/** The key pairs as the key file's JSON (also how a cluster keeps them in its database: coordinator/cluster/shared-secrets.ts). */
export function encodeKeyFile(owner: KeyOwner, keys: KeyPairs): string {
  const file: z.infer<typeof KeyFileSchema> = {
    format: KEY_FILE_FORMAT,
    owner,
    createdAt: new Date().toISOString(),
    signPublicKey: toBase64(keys.sign.publicKey),
    signSecretKey: toBase64(keys.sign.secretKey),
    boxPublicKey: toBase64(keys.box.publicKey),
    boxSecretKey: toBase64(keys.box.secretKey),
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}

/**
 * Parses what {@link encodeKeyFile} wrote; `path` names where it came from in errors.
 * @throws FL_ERR_KEY_FILE when it is malformed, holds another owner's keys, or a public key does not match
 */
export function decodeKeyFile(path: string, text: string, owner: KeyOwner): KeyPairs {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new FedloraError('FL_ERR_KEY_FILE', `${path} is not JSON`, { path }, { cause: e });
  }
  const parsed = KeyFileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new FedloraError('FL_ERR_KEY_FILE', `${path}: field '${issue.path.join('.')}': ${issue.message}`, { path });
  }
  const f = parsed.data;
  if (f.owner !== owner) throw new FedloraError('FL_ERR_KEY_FILE', `${path} holds ${f.owner} keys, not ${owner} keys`, { path });
  const sign = nacl.sign.keyPair.fromSecretKey(fromBase64(f.signSecretKey));
  const box = nacl.box.keyPair.fromSecretKey(fromBase64(f.boxSecretKey));
  // The public keys are derivable; a mismatch means the file was edited or corrupted.
  if (toBase64(sign.publicKey) !== f.signPublicKey || toBase64(box.publicKey) !== f.boxPublicKey) {
    throw new FedloraError('FL_ERR_KEY_FILE', `${path}: a public key does not match its secret key`, { path });
  }
  return { sign, box };
}

/**
 * Loads a key file.
 * @throws FL_ERR_KEY_FILE when it is missing, malformed, holds another owner's keys, or can be
 *   read by group or others (mode must be 0600 or stricter)
 */
export function loadKeys(path: string, owner: KeyOwner): KeyPairs {
  const text = readPrivateFile(path, 0o077);
  if (text === undefined) throw new FedloraError('FL_ERR_KEY_FILE', `${path} does not exist (no ${owner} keys yet)`, { path });
  return decodeKeyFile(path, text, owner);
}

/**
 * Loads the key file at `path`, or creates it (mode 0600, atomically, once) when it does not exist.
 * @returns the keys, whether this call created them, and their fingerprint
 */
export function loadOrCreateKeys(path: string, owner: KeyOwner): { keys: KeyPairs; created: boolean; fingerprint: string } {
  const text = readPrivateFile(path, 0o077);
  if (text !== undefined) {
    const keys = decodeKeyFile(path, text, owner);
    return { keys, created: false, fingerprint: fingerprintOf(publicKeysOf(keys)) };
  }
  const fresh = generateKeyPairs();
  if (createPrivateFileOnce(path, encodeKeyFile(owner, fresh))) {
    return { keys: fresh, created: true, fingerprint: fingerprintOf(publicKeysOf(fresh)) };
  }
  const keys = loadKeys(path, owner); // another process created it first: use theirs
  return { keys, created: false, fingerprint: fingerprintOf(publicKeysOf(keys)) };
}

/** The coordinator's keys as the protocol's CoordinatorKey message carries them (base64). */
export function publicKeyMessage(keys: KeyPairs): { signPublicKey: string; boxPublicKey: string; fingerprint: string } {
  const pub = publicKeysOf(keys);
  return { signPublicKey: toBase64(pub.signPublicKey), boxPublicKey: toBase64(pub.boxPublicKey), fingerprint: formatFingerprint(fingerprintOf(pub)) };
}
