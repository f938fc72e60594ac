/**
 * The messages of the four rounds of secure aggregation (Bonawitz et al. 2017, Fig. 4; Bell et
 * al. 2020), as plain data. Client -> coordinator messages carry `from`; the coordinator relays
 * public keys and sealed shares, which it cannot open.
 *
 * 0 AdvertiseKeys  client: two X25519 public keys (c: share encryption, s: mask agreement)
 *   KeysBroadcast  coordinator -> client: its live neighbours' public keys
 * 1 ShareKeys      client: per neighbour, its shares of b_u (self-mask seed) and s_u^SK, sealed for
 *                  that neighbour, with a hash commitment of each share; a commitment of b_u
 *   SharesDelivery coordinator -> client: the sealed shares addressed to it
 * 2 MaskedInput    client: y_u = q(x_u) + PRG(b_u) + sum_v +-PRG(s_uv) mod 2^32
 *   SurvivorView   coordinator -> client: who sent a masked input (survivors) and who did not (dropped)
 * 3 ViewSignature  client: its Ed25519 signature of the view (the consistency check of Bonawitz et
 *                  al. 2017's active-security variant)
 *   UnmaskRequest  coordinator -> client: the view again, with its neighbours' signatures of it
 * 4 UnmaskResponse client: for each neighbour, its share of b_v (survivor) or of s_v^SK (dropped)
 *
 * Advertised keys and views are signed with the client's enrolled Ed25519 identity (identity.ts).
 */

export interface AdvertiseKeys {
  readonly from: string;
  readonly cPublicKey: Uint8Array;
  readonly sPublicKey: Uint8Array;
  /** Ed25519 signature of identity.ts `advertiseDigest(context, from, c, s)` with the enrolled key. */
  readonly signature: Uint8Array;
}

export interface PeerKeys {
  readonly id: string;
  readonly cPublicKey: Uint8Array;
  readonly sPublicKey: Uint8Array;
  /** The peer's enrolled Ed25519 public key, as the coordinator relays it (checked by the client's PeerTrust). */
  readonly signPublicKey: Uint8Array;
  /** The peer's signature of its advertised keys. */
  readonly signature: Uint8Array;
}

export interface KeysBroadcast {
  readonly neighbours: readonly PeerKeys[];
}

export interface SealedShare {
  readonly to: string;
  /** 24-byte nonce || nacl.secretbox(shareOfSelfSeed (33 B) || shareOfSecretKey (33 B)). */
  readonly sealed: Uint8Array;
  /** SHA-256 commitments of each share (key-agreement.ts deriveKey 'share-commitment'). */
  readonly selfSeedShareCommitment: Uint8Array;
  readonly secretKeyShareCommitment: Uint8Array;
}

export interface ShareKeys {
  readonly from: string;
  /** deriveKey('self-seed-commitment', [context, from, b_u]). */
  readonly selfSeedCommitment: Uint8Array;
  readonly shares: readonly SealedShare[];
}

export interface DeliveredShare {
  readonly from: string;
  readonly sealed: Uint8Array;
}

export interface SharesDelivery {
  readonly shares: readonly DeliveredShare[];
}

export interface MaskedInput {
  readonly from: string;
  readonly masked: Uint32Array;
}

/** Who is in the sum (sent a masked input) and who shared keys but sent none. */
export interface SurvivorView {
  readonly survivors: readonly string[];
  readonly dropped: readonly string[];
}

/** A survivor's signature of the view it was shown (identity.ts `viewDigest`). */
export interface ViewSignature {
  readonly from: string;
  readonly signature: Uint8Array;
}

export interface UnmaskRequest extends SurvivorView {
  /** The signatures of this view by the recipient's neighbours that signed it. */
  readonly signatures: readonly ViewSignature[];
}

export interface RevealedShare {
  /** Whose secret the share is of. */
  readonly of: string;
  /** The share's y value, 33 bytes big-endian. */
  readonly y: Uint8Array;
}

export interface UnmaskResponse {
  readonly from: string;
  readonly selfSeedShares: readonly RevealedShare[];
  readonly secretKeyShares: readonly RevealedShare[];
}
