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
 *   UnmaskRequest  coordinator -> client: who sent a masked input (survivors) and who did not (dropped)
 * 3 UnmaskResponse client: for each neighbour, its share of b_v (survivor) or of s_v^SK (dropped)
 */

export interface AdvertiseKeys {
  readonly from: string;
  readonly cPublicKey: Uint8Array;
  readonly sPublicKey: Uint8Array;
}

export interface PeerKeys {
  readonly id: string;
  readonly cPublicKey: Uint8Array;
  readonly sPublicKey: Uint8Array;
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

export interface UnmaskRequest {
  readonly survivors: readonly string[];
  readonly dropped: readonly string[];
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
