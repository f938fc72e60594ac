/**
 * Domain-separated Ed25519 signatures over several byte strings, for anything a party signs
 * besides update envelopes: e.g. the coordinator signing an offer (plan + global state) with the
 * key its clients pinned, so a network attacker cannot change the plan's DP parameters or the
 * state without TLS.
 *
 * The signed message is "fedlora-<domain>-v1\n" || SHA-256(for each part: uint64-LE length || part).
 * The domain keeps a signature for one purpose from being valid for another (an update, an auth
 * reply); the length prefixes keep ["ab", "c"] and ["a", "bc"] apart; the SHA-256 prehash keeps
 * signing a 33 MB state as cheap as hashing it (see privacy/envelope.ts for why SHA-256).
 */
import { createHash } from 'node:crypto';
import { FedloraError } from '../shared/errors.js';
import { signEd25519, verifyEd25519 } from './ed25519.js';

/** Domains whose first line other formats already use: signing under them here could forge those. */
const RESERVED_DOMAINS = new Set(['update-envelope', 'auth', 'key-fingerprint']);

function message(domain: string, parts: readonly Uint8Array[]): Uint8Array {
  if (!/^[a-z0-9-]{1,64}$/.test(domain)) {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `domain must be 1-64 characters of [a-z0-9-], got '${domain}'`);
  }
  if (RESERVED_DOMAINS.has(domain)) {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `domain '${domain}' is reserved for another signed format (privacy/envelope.ts, shared/protocol/auth.ts, privacy/keys.ts)`);
  }
  const hash = createHash('sha256');
  const length = Buffer.alloc(8);
  for (const part of parts) {
    length.writeBigUInt64LE(BigInt(part.length));
    hash.update(length).update(part);
  }
  return Buffer.concat([Buffer.from(`fedlora-${domain}-v1\n`), hash.digest()]);
}

/**
 * Signs `parts` for `domain`.
 * @param domain what the signature is for, e.g. 'offer'; 1-64 characters of [a-z0-9-]
 * @param secretKey a 64-byte Ed25519 secret key (tweetnacl format)
 * @returns a 64-byte detached signature
 */
export function signMessage(domain: string, parts: readonly Uint8Array[], secretKey: Uint8Array): Uint8Array {
  if (secretKey.length !== 64) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `secretKey must be 64 bytes (an Ed25519 secret key), got ${secretKey.length} bytes`);
  return signEd25519(message(domain, parts), secretKey);
}

/** Whether `signature` is `publicKey`'s signature of `parts` for `domain`. Never throws on bad input bytes. */
export function verifyMessage(domain: string, parts: readonly Uint8Array[], signature: Uint8Array, publicKey: Uint8Array): boolean {
  return verifyEd25519(message(domain, parts), signature, publicKey);
}
