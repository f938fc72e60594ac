/**
 * Authenticated secure aggregation against an active coordinator (Bonawitz et al. 2017, Sec. 6,
 * "active adversary"): every client signs the X25519 keys it advertises and, before unmasking,
 * the survivor set it was shown, with its enrolled Ed25519 identity (the key it authenticates
 * with and signs its updates with). Its neighbours verify both.
 *
 * The coordinator relays each neighbour's enrolled signing key with its advertised keys; what
 * keeps it from relaying a key of its own instead is the client's `PeerTrust`: the agent pins
 * every peer's signing key on first sight (trust on first use, as the coordinator's key is pinned;
 * `peer-pins.ts`) and refuses a different one later. docs/secure-aggregation.md, "Threat model",
 * says what that covers and what it does not.
 *
 * Signed messages are SHA-256 digests with a purpose string and length-prefixed parts
 * (key-agreement.ts `deriveKey`), so a signature of one kind never verifies as another, and each
 * is bound to the round's context (job, round, attempt).
 */
import { FedloraError } from '../../shared/errors.js';
import { signEd25519, verifyEd25519 } from '../ed25519.js';
import { deriveKey } from './key-agreement.js';

/** A client's enrolled Ed25519 identity, in tweetnacl's formats. */
export interface SecAggIdentity {
  /** 64-byte secret key (seed || public key). */
  readonly signSecretKey: Uint8Array;
}

/**
 * Decides whether each `signPublicKey` is the enrolled signing key of its peer; called once per
 * round with every neighbour the coordinator relays (so a file-backed trust writes once a round).
 * @throws FedloraError (FL_ERR_SECAGG_IDENTITY) naming the first peer whose key is not: the round
 *   is refused
 */
export type PeerTrust = (peers: ReadonlyArray<{ readonly id: string; readonly signPublicKey: Uint8Array }>) => void;

/** The digest a client signs for its advertised keys. */
export const advertiseDigest = (context: string, from: string, cPublicKey: Uint8Array, sPublicKey: Uint8Array) => deriveKey('advertise-signature', [context, from, cPublicKey, sPublicKey]);

/**
 * The digest a survivor signs for the view it was shown (the consistency check): the round's
 * context and the sorted survivor and dropped sets.
 */
export function viewDigest(context: string, view: { readonly survivors: readonly string[]; readonly dropped: readonly string[] }): Uint8Array {
  const sorted = (ids: readonly string[]) => JSON.stringify([...ids].sort());
  return deriveKey('survivor-view', [context, sorted(view.survivors), sorted(view.dropped)]);
}

export const signDigest = (digest: Uint8Array, identity: SecAggIdentity): Uint8Array => signEd25519(digest, identity.signSecretKey);

export const verifyDigest = (digest: Uint8Array, signature: Uint8Array, signPublicKey: Uint8Array): boolean => verifyEd25519(digest, signature, signPublicKey);

/** The same view (as sets): what a survivor signed against what it is asked to unmask for. */
export function sameView(a: { readonly survivors: readonly string[]; readonly dropped: readonly string[] }, b: { readonly survivors: readonly string[]; readonly dropped: readonly string[] }): boolean {
  const eq = (x: readonly string[], y: readonly string[]) => x.length === y.length && JSON.stringify([...x].sort()) === JSON.stringify([...y].sort());
  return eq(a.survivors, b.survivors) && eq(a.dropped, b.dropped);
}

/**
 * A `PeerTrust` from a fixed roster (tests, in-process simulations, a roster checked out of band).
 * @throws FL_ERR_SECAGG_IDENTITY for a peer outside the roster or with another key
 */
export function rosterTrust(roster: ReadonlyMap<string, Uint8Array>): PeerTrust {
  return (peers) => {
    for (const { id: peer, signPublicKey: key } of peers) {
      const expected = roster.get(peer);
      if (expected === undefined || Buffer.compare(Buffer.from(expected), Buffer.from(key)) !== 0) {
        throw new FedloraError('FL_ERR_SECAGG_IDENTITY', `secure aggregation: the signing key relayed for '${peer}' is not its enrolled key ${expected === undefined ? '(not in the roster)' : ''}`.trimEnd(), { client: peer });
      }
    }
  };
}
