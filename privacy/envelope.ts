/**
 * The update envelope: how a client's update travels to the coordinator.
 *
 * Confidential to the coordinator (nacl.box, X25519 + XSalsa20-Poly1305, from a fresh ephemeral
 * key pair per message), authenticated as the client's (Ed25519 signature with its enrolled key),
 * and bound to (job, round, attempt, client, nonce) so it cannot be replayed elsewhere. The byte
 * layout (docs/privacy.md, "The envelope, byte by byte"):
 *
 * ```
 * offset      size  field
 * 0           4     magic "FLUE" (46 4C 55 45)
 * 4           1     version = 1
 * 5           4     H = header length, uint32 little-endian, 16..4096
 * 9           H     header, UTF-8 JSON {jobId, round, attempt, clientId, nonce, ephemeralPublicKey, createdAt}
 * 9+H         4     L = ciphertext length, uint32 little-endian, >= 48
 * 13+H        L     nacl.box(SHA-256(header bytes) || payload, nonce, coordinator box pk, ephemeral sk)
 * 13+H+L      64    Ed25519 signature of "fedlora-update-envelope-v1\n" || SHA-256(bytes 0 .. 13+H+L)
 * ```
 *
 * Why the SHA-256 of the header inside the box: the signature alone is "encrypt then sign", so a
 * third party could strip it and re-sign the ciphertext under its own client id (submitting
 * someone else's update as its own). The sealed header hash ties the content to the header it was
 * sealed under; a re-signed copy fails with FL_ERR_ENVELOPE_BINDING.
 * Why sign a SHA-256 prehash: Ed25519 hashes its message twice (SHA-512) when signing; hashing the
 * (possibly 33 MB) envelope once with node:crypto's SHA-256 (hardware-accelerated: ~700 MB/s here
 * against ~330 MB/s for SHA-512) is 4x less work, and SHA-256's 128-bit collision resistance
 * matches Ed25519's security level. Signatures are made and checked by node:crypto (privacy/ed25519.ts),
 * byte-identical to tweetnacl's.
 *
 * The box is NaCl's crypto_box, run by libsodium (sodium-native) where it loads and by tweetnacl
 * (pure JS) elsewhere: both give the same bytes (privacy/box.ts), so the wire format is tweetnacl's.
 */
import { createHash } from 'node:crypto';
import nacl from 'tweetnacl';
import { z } from 'zod';
import { FedloraError } from '../shared/errors.js';
import { IdSchema, base64Bytes, fromBase64, toBase64 } from '../shared/protocol/encoding.js';
import { canonicalJson } from '../shared/protocol/canonical-json.js';
import { signEd25519, verifyEd25519 } from './ed25519.js';
import { BOX_ZERO_BYTES, ZERO_BYTES, cryptoBox, cryptoBoxOpen } from './box.js';
import type { NonceStore } from './nonces.js';

/** "FLUE": FedLora Update Envelope. */
export const ENVELOPE_MAGIC = Uint8Array.of(0x46, 0x4c, 0x55, 0x45);
export const ENVELOPE_VERSION = 1;
/** The shortest header accepted (the JSON of its seven fields is longer still). */
export const MIN_HEADER_BYTES = 16;
/** The longest header accepted: ids are <= 64 characters, so a real header is ~250 bytes. */
export const MAX_HEADER_BYTES = 4096;
/** Bytes around header and ciphertext: magic, version, two lengths, signature. */
export const ENVELOPE_OVERHEAD = 4 + 1 + 4 + 4 + 64;
/** What nacl.box adds to its plaintext (Poly1305 tag) plus our sealed header hash. */
const SEALED_EXTRA = nacl.box.overheadLength + 32;
const SIGNATURE_DOMAIN = new TextEncoder().encode('fedlora-update-envelope-v1\n');

/**
 * The largest envelope a payload of `payloadBytes` can produce (with the longest header allowed):
 * what a coordinator should accept as maxBytes for updates up to that size.
 */
export function maxEnvelopeBytes(payloadBytes: number): number {
  return payloadBytes + SEALED_EXTRA + ENVELOPE_OVERHEAD + MAX_HEADER_BYTES;
}
/** @default maxBytes of {@link openUpdate}: 256 MiB, above the 33 MB adapter updates of a 7B model. */
export const DEFAULT_MAX_ENVELOPE_BYTES = 256 * 2 ** 20;

/** What an envelope is bound to. */
export interface EnvelopeBinding {
  readonly jobId: string;
  readonly round: number;
  /** The round's attempt (0 for the first try, then 1, 2... on retries). @default 0 */
  readonly attempt?: number;
  readonly clientId: string;
}

const HeaderSchema = z.strictObject({
  jobId: IdSchema,
  round: z.int().min(0),
  attempt: z.int().min(0),
  clientId: IdSchema,
  /** 24 random bytes, base64: the box nonce and the replay-protection nonce. */
  nonce: base64Bytes(nacl.box.nonceLength, 'nonce'),
  /** The sender's one-time X25519 public key, base64. */
  ephemeralPublicKey: base64Bytes(nacl.box.publicKeyLength, 'ephemeralPublicKey'),
  /** Sealing time, ms since the epoch (client clock; informational, not enforced). */
  createdAt: z.int().min(0),
});
/** The signed JSON header of an envelope. */
export type EnvelopeHeader = z.infer<typeof HeaderSchema>;

/** The parts of an envelope, framed but not yet verified. */
export interface EnvelopeParts {
  readonly headerBytes: Uint8Array;
  readonly ciphertext: Uint8Array;
  readonly signature: Uint8Array;
  /** The bytes the signature covers (everything before it). */
  readonly signed: Uint8Array;
}

function malformed(message: string, details: Record<string, unknown> = {}): never {
  throw new FedloraError('FL_ERR_ENVELOPE_MALFORMED', message, details);
}

function requireKey(key: Uint8Array, length: number, name: string, what: string): void {
  if (!(key instanceof Uint8Array) || key.length !== length) {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `${name} must be ${length} bytes (${what}), got ${key instanceof Uint8Array ? `${key.length} bytes` : typeof key}`);
  }
}

function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest());
}

/** The message the Ed25519 signature is made over: domain || SHA-256(signed bytes). */
function signatureMessage(signed: Uint8Array): Uint8Array {
  const digest = createHash('sha256').update(signed).digest();
  const message = new Uint8Array(SIGNATURE_DOMAIN.length + digest.length);
  message.set(SIGNATURE_DOMAIN, 0);
  message.set(digest, SIGNATURE_DOMAIN.length);
  return message;
}

/**
 * Seals and signs an update for the coordinator.
 * @param payload the update (a safetensors file); not retained
 * @param binding the job, round, attempt and client the update belongs to
 * @param clientSigningSecretKey the client's Ed25519 secret key (64 bytes, nacl.sign format)
 * @param coordinatorBoxPublicKey the coordinator's X25519 public key (32 bytes)
 * @param options.now the createdAt timestamp; @default Date.now()
 * @returns the envelope bytes
 */
export function sealUpdate(
  payload: Uint8Array,
  binding: EnvelopeBinding,
  clientSigningSecretKey: Uint8Array,
  coordinatorBoxPublicKey: Uint8Array,
  options: { now?: number } = {},
): Uint8Array {
  requireKey(clientSigningSecretKey, nacl.sign.secretKeyLength, 'clientSigningSecretKey', 'an Ed25519 secret key');
  requireKey(coordinatorBoxPublicKey, nacl.box.publicKeyLength, 'coordinatorBoxPublicKey', 'an X25519 public key');
  if (payload.length > 0xffff_ffff - SEALED_EXTRA) {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `payload must be < 4 GiB to fit an envelope, got ${payload.length} bytes`);
  }
  const ephemeral = nacl.box.keyPair();
  const nonce = nacl.randomBytes(nacl.box.nonceLength);
  const header: EnvelopeHeader = {
    jobId: binding.jobId,
    round: binding.round,
    attempt: binding.attempt ?? 0,
    clientId: binding.clientId,
    nonce: toBase64(nonce),
    ephemeralPublicKey: toBase64(ephemeral.publicKey),
    createdAt: Math.floor(options.now ?? Date.now()),
  };
  const checked = HeaderSchema.safeParse(header);
  if (!checked.success) {
    const issue = checked.error.issues[0]!;
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `binding.${issue.path.join('.')}: ${issue.message}`, { binding });
  }
  const headerBytes = new TextEncoder().encode(JSON.stringify(header));

  // One allocation for the plaintext and one for the envelope: crypto_box writes its ciphertext
  // straight into the envelope (its 16 leading scratch bytes land where the header then goes).
  const h = headerBytes.length;
  const ciphertextLength = SEALED_EXTRA + payload.length;
  const plain = new Uint8Array(ZERO_BYTES + 32 + payload.length); // 32 zero bytes, as crypto_box wants
  plain.set(sha256(headerBytes), ZERO_BYTES);
  plain.set(payload, ZERO_BYTES + 32);
  const envelope = new Uint8Array(ENVELOPE_OVERHEAD + h + ciphertextLength);
  const boxed = envelope.subarray(13 + h - BOX_ZERO_BYTES, 13 + h + ciphertextLength);
  if (!cryptoBox(boxed, plain, nonce, coordinatorBoxPublicKey, ephemeral.secretKey)) {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', 'coordinatorBoxPublicKey was refused by crypto_box');
  }
  ephemeral.secretKey.fill(0); // one use only
  plain.fill(0, ZERO_BYTES); // do not leave the plaintext update lying in a dropped buffer

  const view = new DataView(envelope.buffer);
  envelope.set(ENVELOPE_MAGIC, 0);
  envelope[4] = ENVELOPE_VERSION;
  view.setUint32(5, h, true);
  envelope.set(headerBytes, 9);
  view.setUint32(9 + h, ciphertextLength, true);
  const signedEnd = 13 + h + ciphertextLength;
  const signature = signEd25519(signatureMessage(envelope.subarray(0, signedEnd)), clientSigningSecretKey);
  envelope.set(signature, signedEnd);
  return envelope;
}

/**
 * Frames an envelope into its parts, checking only the layout (no keys needed).
 * @throws FL_ERR_ENVELOPE_MALFORMED for a wrong magic or version, bad lengths, truncation or
 *   trailing bytes; FL_ERR_ENVELOPE_SIGNATURE when the signature is missing altogether
 */
export function parseEnvelope(envelope: Uint8Array, maxBytes: number = DEFAULT_MAX_ENVELOPE_BYTES): EnvelopeParts {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `maxBytes must be an integer >= 1, got ${maxBytes}`);
  if (!(envelope instanceof Uint8Array)) malformed(`envelope must be bytes, got ${typeof envelope}`);
  if (envelope.length > maxBytes) malformed(`envelope is ${envelope.length} bytes, more than the ${maxBytes} allowed (maxBytes)`, { bytes: envelope.length, maxBytes });
  if (envelope.length < 9) malformed(`envelope is truncated: ${envelope.length} bytes, shorter than its 9-byte preamble`);
  for (let i = 0; i < ENVELOPE_MAGIC.length; i++) {
    if (envelope[i] !== ENVELOPE_MAGIC[i]) malformed('not a fedlora update envelope: the magic bytes are not "FLUE"');
  }
  if (envelope[4] !== ENVELOPE_VERSION) malformed(`envelope version ${envelope[4]} is not supported (this build reads version ${ENVELOPE_VERSION})`);
  const view = new DataView(envelope.buffer, envelope.byteOffset, envelope.byteLength);
  const h = view.getUint32(5, true);
  // A real header is > 100 bytes; >= 16 also lets crypto_box_open read its scratch bytes in place.
  if (h < MIN_HEADER_BYTES || h > MAX_HEADER_BYTES) malformed(`envelope header length ${h} is outside ${MIN_HEADER_BYTES}..${MAX_HEADER_BYTES}`);
  if (9 + h + 4 > envelope.length) malformed(`envelope is truncated: the header needs ${h} bytes and a ciphertext length, ${envelope.length - 9} remain`);
  const l = view.getUint32(9 + h, true);
  if (l < SEALED_EXTRA) malformed(`envelope ciphertext length ${l} is shorter than the ${SEALED_EXTRA} bytes any sealed update has`);
  const signedEnd = 13 + h + l;
  if (signedEnd > envelope.length) malformed(`envelope is truncated: the ciphertext needs ${l} bytes, ${envelope.length - 13 - h} remain`);
  const rest = envelope.length - signedEnd;
  if (rest === 0) throw new FedloraError('FL_ERR_ENVELOPE_SIGNATURE', 'envelope has no signature: it ends right after the ciphertext');
  if (rest < nacl.sign.signatureLength) malformed(`envelope is truncated: the signature needs 64 bytes, ${rest} remain`);
  if (rest > nacl.sign.signatureLength) malformed(`envelope has ${rest - nacl.sign.signatureLength} bytes after its signature`);
  return {
    headerBytes: envelope.subarray(9, 9 + h),
    ciphertext: envelope.subarray(13 + h, signedEnd),
    signature: envelope.subarray(signedEnd),
    signed: envelope.subarray(0, signedEnd),
  };
}

/** Decodes and validates a header's JSON. @throws FL_ERR_ENVELOPE_MALFORMED */
export function decodeHeader(headerBytes: Uint8Array): EnvelopeHeader {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch {
    malformed('envelope header is not UTF-8 JSON');
  }
  const parsed = HeaderSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    malformed(`envelope header field '${issue.path.join('.') || '(root)'}': ${issue.message}`);
  }
  return parsed.data;
}

/** The binding {@link openUpdate} expects; clientId and attempt are checked when given. */
export interface ExpectedBinding {
  readonly jobId: string;
  readonly round: number;
  readonly attempt?: number;
  readonly clientId?: string;
}

/** A client's Ed25519 public key, or a lookup from client id to key (undefined: unknown client). */
export type SigningKeyLookup = Uint8Array | ((clientId: string) => Uint8Array | undefined);

/** An opened envelope. */
export interface OpenedUpdate {
  readonly header: EnvelopeHeader;
  /** The update bytes (a view into a fresh buffer, not into the envelope). */
  readonly payload: Uint8Array;
}

/** An envelope that passed every check that comes before decryption. */
export interface CheckedEnvelope {
  readonly parts: EnvelopeParts;
  readonly header: EnvelopeHeader;
}

/**
 * The checks of {@link openUpdate} that come before decryption: size, framing, signature, header,
 * binding, and whether the nonce was already accepted. Exported for callers that decrypt
 * elsewhere (privacy/envelope-opener.ts decrypts in worker threads).
 */
export async function checkEnvelope(
  envelope: Uint8Array,
  expected: ExpectedBinding,
  clientSigningPublicKey: SigningKeyLookup,
  nonceStore: NonceStore,
  options: { maxBytes?: number } = {},
): Promise<CheckedEnvelope> {
  const parts = parseEnvelope(envelope, options.maxBytes ?? DEFAULT_MAX_ENVELOPE_BYTES);

  // The signer: the given key, or the key of the expected (authenticated) client, or of the
  // client the header names. Verifying before parsing the header makes any changed header byte
  // a signature failure rather than a parse error.
  let signerKey: Uint8Array | undefined;
  let signerId: string | undefined;
  if (clientSigningPublicKey instanceof Uint8Array) {
    signerKey = clientSigningPublicKey;
  } else {
    signerId = expected.clientId ?? decodeHeader(parts.headerBytes).clientId;
    signerKey = clientSigningPublicKey(signerId);
    if (signerKey === undefined) {
      throw new FedloraError('FL_ERR_ENVELOPE_SIGNATURE', `no signing key is known for client '${signerId}'`, { clientId: signerId });
    }
  }
  requireKey(signerKey, nacl.sign.publicKeyLength, 'clientSigningPublicKey', 'an Ed25519 public key');
  if (!verifyEd25519(signatureMessage(parts.signed), parts.signature, signerKey)) {
    throw new FedloraError('FL_ERR_ENVELOPE_SIGNATURE', `envelope signature does not verify${signerId === undefined ? '' : ` with client '${signerId}''s key`}: it was changed or signed by another key`);
  }

  const header = decodeHeader(parts.headerBytes);
  const mismatches: string[] = [];
  if (header.jobId !== expected.jobId) mismatches.push(`job '${header.jobId}' (expected '${expected.jobId}')`);
  if (header.round !== expected.round) mismatches.push(`round ${header.round} (expected ${expected.round})`);
  if (expected.attempt !== undefined && header.attempt !== expected.attempt) mismatches.push(`attempt ${header.attempt} (expected ${expected.attempt})`);
  if (expected.clientId !== undefined && header.clientId !== expected.clientId) mismatches.push(`client '${header.clientId}' (expected '${expected.clientId}')`);
  if (mismatches.length > 0) {
    throw new FedloraError('FL_ERR_ENVELOPE_BINDING', `envelope is bound to ${mismatches.join(', ')}`, { header });
  }
  if (await nonceStore.has(nonceKeyOf(header))) throw replayError(header); // before the costly decryption
  return { parts, header };
}

function nonceKeyOf(header: EnvelopeHeader) {
  return { jobId: header.jobId, round: header.round, clientId: header.clientId, nonce: header.nonce };
}

function replayError(header: EnvelopeHeader): FedloraError {
  return new FedloraError('FL_ERR_ENVELOPE_REPLAY', `envelope nonce ${header.nonce} of client '${header.clientId}' was already used in job '${header.jobId}' round ${header.round}`, { nonce: header.nonce });
}

/**
 * The ciphertext as crypto_box_open takes it: preceded by 16 scratch bytes that it reads and
 * ignores, which here are the end of the header, so no padded copy is needed.
 */
export function boxedCiphertext(parts: EnvelopeParts): Uint8Array {
  const { ciphertext } = parts;
  return new Uint8Array(ciphertext.buffer, ciphertext.byteOffset - BOX_ZERO_BYTES, ciphertext.length + BOX_ZERO_BYTES);
}

/**
 * crypto_box_open of a boxed ciphertext ({@link boxedCiphertext}).
 * @returns the plaintext after crypto_box's 32 zero bytes (sealed header hash || payload), or null
 *   when it does not authenticate under these keys
 */
export function decryptBoxed(boxed: Uint8Array, nonce: Uint8Array, ephemeralPublicKey: Uint8Array, coordinatorBoxSecretKey: Uint8Array): Uint8Array | null {
  const plain = new Uint8Array(boxed.length);
  return cryptoBoxOpen(plain, boxed, nonce, ephemeralPublicKey, coordinatorBoxSecretKey) ? plain.subarray(ZERO_BYTES) : null;
}

/**
 * The checks of {@link openUpdate} after decryption: the sealed header hash, then the atomic
 * record of the nonce.
 * @param inner the result of {@link decryptBoxed} (null: it did not decrypt)
 */
export async function finishOpening(checked: CheckedEnvelope, inner: Uint8Array | null, nonceStore: NonceStore): Promise<OpenedUpdate> {
  const { parts, header } = checked;
  if (inner === null) {
    throw new FedloraError('FL_ERR_ENVELOPE_DECRYPT', `envelope of client '${header.clientId}' does not decrypt with this coordinator's key: it was sealed to another key`);
  }
  if (!nacl.verify(inner.subarray(0, 32), sha256(parts.headerBytes))) {
    throw new FedloraError('FL_ERR_ENVELOPE_BINDING', `envelope content was sealed under another header (a re-signed or spliced envelope), claimed by client '${header.clientId}'`);
  }
  if (!(await nonceStore.checkAndAdd(nonceKeyOf(header)))) throw replayError(header); // a concurrent opening won
  return { header, payload: inner.subarray(32) };
}

/**
 * Verifies, checks the binding of, decrypts and records the nonce of an envelope. Checks run
 * cheapest and most telling first: framing, signature, binding, replay, decryption.
 * @param envelope the bytes received
 * @param expected the job and round being collected; clientId (the authenticated sender) and
 *   attempt are checked when given
 * @param clientSigningPublicKey the sender's Ed25519 public key, or a lookup by the header's clientId
 * @param coordinatorBoxSecretKey the coordinator's X25519 secret key (32 bytes)
 * @param nonceStore accepted nonces; the nonce is recorded only when everything else passed
 * @param options.maxBytes the largest envelope accepted; @default DEFAULT_MAX_ENVELOPE_BYTES
 * @throws FedloraError FL_ERR_ENVELOPE_MALFORMED (framing, header, size), _SIGNATURE (missing,
 *   invalid, unknown signer), _BINDING (other job/round/attempt/client, re-signed content),
 *   _REPLAY (nonce seen), _DECRYPT (not sealed to this coordinator's key)
 */
export async function openUpdate(
  envelope: Uint8Array,
  expected: ExpectedBinding,
  clientSigningPublicKey: SigningKeyLookup,
  coordinatorBoxSecretKey: Uint8Array,
  nonceStore: NonceStore,
  options: { maxBytes?: number } = {},
): Promise<OpenedUpdate> {
  requireKey(coordinatorBoxSecretKey, nacl.box.secretKeyLength, 'coordinatorBoxSecretKey', 'an X25519 secret key');
  const checked = await checkEnvelope(envelope, expected, clientSigningPublicKey, nonceStore, options);
  const { header } = checked;
  const inner = decryptBoxed(boxedCiphertext(checked.parts), fromBase64(header.nonce), fromBase64(header.ephemeralPublicKey), coordinatorBoxSecretKey);
  return finishOpening(checked, inner, nonceStore);
}

// ---------------------------------------------------------------- signed offers

/** The parts of an offer the coordinator signs (shared/protocol/events.ts `OfferSchema`). */
export interface OfferSigned {
  readonly jobId: string;
  readonly round: number;
  readonly attempt: number;
  readonly deadline: number;
  readonly maxUpdateBytes: number;
  /** The offered global state (safetensors bytes). */
  readonly state: Uint8Array;
  /** The plan as a JSON value (as built, or as received before any parsing). */
  readonly plan: unknown;
  readonly secureAggregation?: unknown;
}

const sha256Hex = (bytes: Uint8Array | string): string => createHash('sha256').update(bytes).digest('hex');

/**
 * The bytes a coordinator signs for an offer: UTF-8 of
 * `"fedlora-offer-v1\n" + jobId + "\n" + round + "\n" + attempt + "\n" + deadline + "\n" +
 * maxUpdateBytes + "\n" + sha256(state) + "\n" + sha256(canonicalJson(plan)) + "\n" +
 * sha256(canonicalJson(secureAggregation ?? null))` (hex digests).
 * @param stateSha256 the state's SHA-256 when already known (a coordinator hashes each state once
 *   for all the clients it offers it to); @default computed
 */
export function offerMessage(offer: OfferSigned, stateSha256: string = sha256Hex(offer.state)): Uint8Array {
  const lines = [
    'fedlora-offer-v1',
    offer.jobId,
    String(offer.round),
    String(offer.attempt),
    String(offer.deadline),
    String(offer.maxUpdateBytes),
    stateSha256,
    sha256Hex(canonicalJson(offer.plan)),
    sha256Hex(canonicalJson(offer.secureAggregation ?? null)),
  ];
  return new TextEncoder().encode(lines.join('\n'));
}

/** The SHA-256 (hex) of an offer's state, for `offerMessage`. */
export function offerStateSha256(state: Uint8Array): string {
  return sha256Hex(state);
}

/** Signs an offer with the coordinator's Ed25519 secret key; the base64 signature. */
export function signOffer(offer: OfferSigned, coordinatorSignSecretKey: Uint8Array, stateSha256?: string): string {
  return toBase64(signEd25519(offerMessage(offer, stateSha256), coordinatorSignSecretKey));
}

/**
 * Checks an offer's signature with the pinned coordinator key.
 * @throws FL_ERR_OFFER_SIGNATURE when it is missing or does not verify (the offer was changed on
 *   the way, or signed by another key)
 */
export function verifyOffer(offer: OfferSigned, signature: string | undefined, coordinatorSignPublicKey: Uint8Array): void {
  const what = `the offer for job '${offer.jobId}' round ${offer.round} attempt ${offer.attempt}`;
  if (signature === undefined) throw new FedloraError('FL_ERR_OFFER_SIGNATURE', `${what} is not signed: refused (is this a fedlora coordinator of protocol version 1 with signed offers?)`);
  let message: Uint8Array;
  try {
    message = offerMessage(offer);
  } catch (e) {
    throw new FedloraError('FL_ERR_OFFER_SIGNATURE', `${what} cannot be checked: ${(e as Error).message}`, {}, { cause: e });
  }
  if (!verifyEd25519(message, fromBase64(signature), coordinatorSignPublicKey)) {
    throw new FedloraError('FL_ERR_OFFER_SIGNATURE', `${what} does not verify with the pinned coordinator key: its state, plan or settings were changed on the way (or it was signed by another key); refused without training. Use an https:// coordinator URL or check the network path`);
  }
}
