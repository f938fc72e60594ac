/**
 * The client side of secure aggregation (Bonawitz et al. 2017, Fig. 4, semi-honest variant; the
 * sparse graph of Bell et al. 2020) as a state machine: one method per round, each taking the
 * coordinator's message and returning the client's reply. Pure except for fresh randomness
 * (node:crypto CSPRNG): no I/O, so the same class serves the agent and in-process simulations.
 *
 * Safety rules the client enforces itself (they are what protects it from a curious coordinator):
 * - it reveals, for each neighbour, the share of b_v or the share of s_v^SK, never both, and
 *   answers one unmasking request only;
 * - it unmasks only when it is listed as a survivor and at least `minSurvivors` clients are;
 * - it refuses keys or shares from clients outside its neighbourhood, and shares it cannot open.
 *
 * And against an active coordinator (Bonawitz et al. 2017, Sec. 6; identity.ts):
 * - it signs its advertised keys with its enrolled Ed25519 key and accepts a neighbour's keys only
 *   with a valid signature under a signing key its PeerTrust accepts (FL_ERR_SECAGG_IDENTITY);
 * - it signs the one survivor view it is shown (consistency check) and unmasks only for that same
 *   view, with valid signatures of it from at least t of its neighbours; a different view or a bad
 *   signature aborts the round (FL_ERR_SECAGG_INCONSISTENT).
 */
import nacl from 'tweetnacl';
import { randomBytes } from 'node:crypto';
import { FedloraError } from '../../shared/errors.js';
import type { RandomSource } from '../random.js';
import { advertiseDigest, sameView, signDigest, verifyDigest, viewDigest, type PeerTrust, type SecAggIdentity } from './identity.js';
import type { SecAggConfig } from './config.js';
import { bigIntToBytes, bytesToBigInt, FIELD_BYTES } from './field.js';
import { AgreementKeyPair } from './key-agreement.js';
import { applyMask } from './mask-expansion.js';
import type { AdvertiseKeys, KeysBroadcast, MaskedInput, PeerKeys, ShareKeys, SharesDelivery, SurvivorView, UnmaskRequest, UnmaskResponse, ViewSignature } from './messages.js';
import { neighbourhood } from './neighbourhood.js';
import { pairMaskKey, pairSign, selfMaskKey, selfSeedCommitment, shareCommitment, shareSealingKey } from './derivations.js';
import { quantise } from './quantize.js';
import { splitSecret } from './shamir.js';

type Step = 'advertise' | 'share' | 'mask' | 'consistency' | 'unmask' | 'done';

/** How a client authenticates itself and its peers (identity.ts). */
export interface SecAggAuth {
  readonly identity: SecAggIdentity;
  readonly trust: PeerTrust;
}

function inconsistent(client: string, message: string, details: Record<string, unknown> = {}): never {
  throw new FedloraError('FL_ERR_SECAGG_INCONSISTENT', `secure aggregation (${client}): ${message}; not unmasking`, { client, ...details });
}

function protocolError(client: string, message: string): never {
  throw new FedloraError('FL_ERR_SECAGG_PROTOCOL', `secure aggregation (${client}): ${message}`, { client });
}

export class SecAggClient {
  private step: Step = 'advertise';
  private readonly cKeys = new AgreementKeyPair();
  private readonly sKeys = new AgreementKeyPair();
  private readonly neighbours: ReadonlySet<string>;
  private peers = new Map<string, PeerKeys>();
  /** Neighbours whose shares this client holds, with the two shares. */
  private held = new Map<string, { selfSeed: Uint8Array; secretKey: Uint8Array }>();
  private selfSeed: Uint8Array | null = null;
  /** The view this client signed in the consistency check (the only one it will unmask for). */
  private signedView: SurvivorView | null = null;
  /** X25519(c_u, c_v) per neighbour, agreed once for sealing (round 1) and opening (round 2). */
  private readonly sealingSecrets = new Map<string, Uint8Array>();
  /** Coordinates clipped to the range by the last quantisation. */
  clippedCoordinates = 0;

  /**
   * @param config the round's settings (config.ts), the same for every party
   * @param id this client's id, one of config.clients
   * @param auth this client's enrolled signing key and how it trusts its peers' keys
   * @param random uniform bits for the stochastic rounding; @default the node:crypto CSPRNG
   */
  constructor(
    private readonly config: SecAggConfig,
    readonly id: string,
    private readonly auth: SecAggAuth,
    private readonly random?: RandomSource,
  ) {
    if (!config.clients.includes(id)) throw new FedloraError('FL_ERR_SECAGG_CONFIG', `secure aggregation: client '${id}' is not in the round's client list`, { field: 'clients' });
    this.neighbours = neighbourhood(config.clients, config.degree, config.graphSeed).get(id)!;
  }

  private expect(step: Step, what: string): void {
    if (this.step !== step) protocolError(this.id, `${what} arrived at step '${this.step}', expected at '${step}'`);
  }

  private sealingSecret(peer: string): Uint8Array {
    let secret = this.sealingSecrets.get(peer);
    if (secret === undefined) {
      secret = this.cKeys.agree(this.peers.get(peer)!.cPublicKey, peer);
      this.sealingSecrets.set(peer, secret);
    }
    return secret;
  }

  private point(client: string): number {
    return this.config.clients.indexOf(client) + 1; // O(n), called k times a round
  }

  /** Round 0: fresh X25519 key pairs for this round. */
  advertiseKeys(): AdvertiseKeys {
    this.expect('advertise', 'advertiseKeys');
    this.step = 'share';
    const c = this.cKeys.publicKey;
    const s = this.sKeys.publicKey;
    return { from: this.id, cPublicKey: c, sPublicKey: s, signature: signDigest(advertiseDigest(this.config.context, this.id, c, s), this.auth.identity) };
  }

  /** Round 1: shares b_u and s_u^SK among the live neighbours, sealed for each. */
  shareKeys(broadcast: KeysBroadcast): ShareKeys {
    this.expect('share', 'the neighbours\' keys');
    const seenKeys = new Set<string>();
    const peers = new Map<string, PeerKeys>();
    for (const p of broadcast.neighbours) {
      if (!this.neighbours.has(p.id)) protocolError(this.id, `keys of '${p.id}', which is not a neighbour`);
      if (peers.has(p.id)) protocolError(this.id, `keys of '${p.id}' twice`);
      // each peer must have signed the keys relayed for it, with the signing key relayed with them ...
      if (!verifyDigest(advertiseDigest(this.config.context, p.id, p.cPublicKey, p.sPublicKey), p.signature, p.signPublicKey)) {
        throw new FedloraError('FL_ERR_SECAGG_IDENTITY', `secure aggregation (${this.id}): the keys relayed for '${p.id}' are not signed by its enrolled key (substituted on the way?)`, { client: p.id });
      }
      for (const k of [p.cPublicKey, p.sPublicKey]) {
        const hex = Buffer.from(k).toString('hex');
        if (seenKeys.has(hex)) throw new FedloraError('FL_ERR_SECAGG_BAD_SHARE', `secure aggregation (${this.id}): '${p.id}' reuses a public key`, { client: p.id });
        seenKeys.add(hex);
      }
      peers.set(p.id, p);
    }
    // ... and that signing key must be the peer's enrolled one (checked, and pinned, all at once,
    // only once every signature verified)
    this.auth.trust(broadcast.neighbours);
    this.peers = peers;
    if (this.peers.size < this.config.threshold) {
      throw new FedloraError('FL_ERR_SECAGG_DROPOUTS', `secure aggregation (${this.id}): ${this.peers.size} live neighbours, fewer than the threshold ${this.config.threshold}`, { client: this.id });
    }
    const seed = new Uint8Array(randomBytes(32));
    this.selfSeed = seed;
    const holders = [...this.peers.keys()];
    const xs = holders.map((h) => this.point(h));
    const seedShares = splitSecret(seed, xs, this.config.threshold);
    const keyShares = splitSecret(this.sKeys.secretKey, xs, this.config.threshold);
    const ctx = this.config.context;
    const shares = holders.map((to, i) => {
      const a = bigIntToBytes(seedShares[i]!.y, FIELD_BYTES);
      const b = bigIntToBytes(keyShares[i]!.y, FIELD_BYTES);
      const plain = new Uint8Array(2 * FIELD_BYTES);
      plain.set(a, 0);
      plain.set(b, FIELD_BYTES);
      const key = shareSealingKey(ctx, this.id, to, this.sealingSecret(to));
      const nonce = new Uint8Array(randomBytes(nacl.secretbox.nonceLength));
      const box = nacl.secretbox(plain, nonce, key);
      const sealed = new Uint8Array(nonce.length + box.length);
      sealed.set(nonce, 0);
      sealed.set(box, nonce.length);
      return {
        to,
        sealed,
        selfSeedShareCommitment: shareCommitment('self-seed', ctx, this.id, to, a),
        secretKeyShareCommitment: shareCommitment('secret-key', ctx, this.id, to, b),
      };
    });
    this.step = 'mask';
    return { from: this.id, selfSeedCommitment: selfSeedCommitment(ctx, this.id, seed), shares };
  }

  /**
   * Round 2: opens the shares neighbours sealed for it, then masks the update: quantise (clip to
   * [-c, c], stochastic rounding), add PRG(b_u) and, per neighbour that shared, +-PRG(s_uv).
   * @param values the vector to aggregate, of config.vectorLength (any noise already added)
   */
  maskedInput(delivery: SharesDelivery, values: ArrayLike<number>): MaskedInput {
    this.expect('mask', 'the delivered shares');
    if (values.length !== this.config.vectorLength) {
      throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `secure aggregation (${this.id}): the vector has ${values.length} values, the round aggregates ${this.config.vectorLength}`);
    }
    for (const d of delivery.shares) {
      if (!this.peers.has(d.from)) protocolError(this.id, `a share from '${d.from}', which did not advertise keys to it`);
      if (this.held.has(d.from)) protocolError(this.id, `two shares from '${d.from}'`);
      const key = shareSealingKey(this.config.context, d.from, this.id, this.sealingSecret(d.from));
      const nonceLength = nacl.secretbox.nonceLength;
      const plain = d.sealed.length > nonceLength ? nacl.secretbox.open(d.sealed.subarray(nonceLength), d.sealed.subarray(0, nonceLength), key) : null;
      if (plain === null || plain.length !== 2 * FIELD_BYTES) {
        throw new FedloraError('FL_ERR_SECAGG_BAD_SHARE', `secure aggregation (${this.id}): the share from '${d.from}' does not open (tampered, or sealed for another client or round)`, { client: d.from });
      }
      this.held.set(d.from, { selfSeed: plain.slice(0, FIELD_BYTES), secretKey: plain.slice(FIELD_BYTES) });
    }
    if (this.held.size < this.config.threshold) {
      throw new FedloraError('FL_ERR_SECAGG_DROPOUTS', `secure aggregation (${this.id}): shares from ${this.held.size} neighbours, fewer than the threshold ${this.config.threshold}`, { client: this.id });
    }
    const { quantised, clippedCoordinates } = quantise(values, this.config, this.random);
    this.clippedCoordinates = clippedCoordinates;
    applyMask(quantised, selfMaskKey(this.config.context, this.id, this.selfSeed!), 1);
    for (const v of this.held.keys()) {
      const agreed = this.sKeys.agree(this.peers.get(v)!.sPublicKey, v);
      applyMask(quantised, pairMaskKey(this.config.context, this.id, v, agreed), pairSign(this.id, v));
    }
    this.step = 'consistency';
    return { from: this.id, masked: quantised };
  }

  /** The rules a view must meet before this client signs (and later unmasks for) it. */
  private checkView(view: SurvivorView): void {
    const survivors = new Set(view.survivors);
    const dropped = new Set(view.dropped);
    if (survivors.size !== view.survivors.length || dropped.size !== view.dropped.length) protocolError(this.id, 'the survivor view lists a client twice');
    for (const d of dropped) if (survivors.has(d)) protocolError(this.id, `'${d}' is listed both as a survivor and as dropped: revealing both of its secrets would expose its update`);
    if (!survivors.has(this.id)) protocolError(this.id, 'the unmasking request does not list this client as a survivor');
    if (survivors.size < this.config.minSurvivors) {
      throw new FedloraError('FL_ERR_SECAGG_DROPOUTS', `secure aggregation (${this.id}): ${survivors.size} survivors, fewer than minSurvivors ${this.config.minSurvivors}; refusing to unmask a sum of so few clients`, { client: this.id });
    }
  }

  /**
   * Round 3, the consistency check: signs the one survivor view this client is shown. It signs
   * once; the unmasking request must carry the same view.
   */
  consistencyCheck(view: SurvivorView): ViewSignature {
    this.expect('consistency', 'the survivor view');
    this.checkView(view);
    this.signedView = { survivors: [...view.survivors], dropped: [...view.dropped] };
    this.step = 'unmask';
    return { from: this.id, signature: signDigest(viewDigest(this.config.context, view), this.auth.identity) };
  }

  /**
   * Round 4: reveals, per neighbour it holds shares of, the share of b_v (survivor) or of s_v^SK
   * (dropped); only for the view it signed, and only when at least t of its neighbours signed that
   * same view (every signature shown must verify).
   * @throws FL_ERR_SECAGG_INCONSISTENT when the coordinator shows another view or a signature that
   *   does not verify (it lied about the survivors to some client)
   */
  unmask(request: UnmaskRequest): UnmaskResponse {
    this.expect('unmask', 'the unmasking request');
    // whatever happens next, this client answers no other request of this round
    this.step = 'done';
    try {
      return this.reveal(request);
    } finally {
      this.held = new Map();
      this.peers = new Map();
      this.sealingSecrets.clear();
    }
  }

  private reveal(request: UnmaskRequest): UnmaskResponse {
    const view = this.signedView!;
    if (!sameView(view, request)) inconsistent(this.id, `the unmasking request lists ${request.survivors.length} survivors and ${request.dropped.length} dropped, not the ${view.survivors.length} and ${view.dropped.length} this client signed`);
    const digest = viewDigest(this.config.context, view);
    const signers = new Set<string>();
    for (const s of request.signatures) {
      const peer = this.peers.get(s.from);
      if (peer === undefined || !view.survivors.includes(s.from)) protocolError(this.id, `a view signature from '${s.from}', which is not a surviving neighbour`);
      if (signers.has(s.from)) protocolError(this.id, `two view signatures from '${s.from}'`);
      if (!verifyDigest(digest, s.signature, peer.signPublicKey)) inconsistent(this.id, `'${s.from}' did not sign this survivor view (the coordinator showed it another one)`, { signer: s.from });
      signers.add(s.from);
    }
    if (signers.size < this.config.threshold) {
      inconsistent(this.id, `${signers.size} neighbours signed the survivor view, fewer than the threshold ${this.config.threshold}`);
    }
    const survivors = new Set(view.survivors);
    const dropped = new Set(view.dropped);
    const selfSeedShares = [];
    const secretKeyShares = [];
    for (const [v, s] of this.held) {
      if (survivors.has(v)) selfSeedShares.push({ of: v, y: s.selfSeed });
      else if (dropped.has(v)) secretKeyShares.push({ of: v, y: s.secretKey });
    }
    return { from: this.id, selfSeedShares, secretKeyShares };
  }
}

/** For the coordinator: a share's y as a bigint, refusing out-of-range values. */
export function shareValue(y: Uint8Array): bigint | null {
  if (y.length !== FIELD_BYTES) return null;
  return bytesToBigInt(y);
}
