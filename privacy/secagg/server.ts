/**
 * The coordinator side of secure aggregation (Bonawitz et al. 2017, Fig. 4; Bell et al. 2020) as a
 * state machine: `receive*` takes one client's message, `close*` ends a step with the clients
 * heard so far and returns what to relay. It keeps a running sum of the masked inputs mod 2^32
 * (memory O(one update)) and, at the end, removes the self masks of the survivors and the pair
 * masks of the clients that dropped after sharing their keys, from Shamir reconstructions.
 *
 * Dropouts:
 * - before masking (steps 0-1): every live client needs t live neighbours, to hold the shares of
 *   its secrets;
 * - after sharing keys (steps 2-3): every survivor needs t neighbours answering the unmasking
 *   request (to rebuild b_u), every dropped client too (to rebuild s_u^SK); beyond that the round
 *   fails with FL_ERR_SECAGG_DROPOUTS naming the client, never with a wrong sum.
 *
 * Bad shares: each share is checked against the hash commitment its owner sent with it, and each
 * rebuilt secret against its owner's commitment (b_u) or public key (s_u^SK). A share that fails
 * is left out and reported (`badShares`); the round fails with FL_ERR_SECAGG_BAD_SHARE only when
 * fewer than t good shares remain. So a malicious client's bad share is detected and has no effect
 * on the sum; it can at most make a secret unrecoverable, which fails the round cleanly.
 *
 * Authentication (identity.ts): the coordinator holds each client's enrolled Ed25519 key, refuses
 * advertised keys that are not signed with it (FL_ERR_SECAGG_IDENTITY), relays the key and the
 * signature with the advertised keys, and runs the consistency check between the masked inputs
 * and the unmasking: each survivor signs the survivor view, and each one is asked to unmask with
 * its neighbours' signatures of that view. An honest coordinator checks every signature too, so a
 * client's bad signature is refused at once instead of aborting its neighbours.
 */
import { FedloraError } from '../../shared/errors.js';
import type { SecAggConfig } from './config.js';
import { advertiseDigest, verifyDigest, viewDigest } from './identity.js';
import { AgreementKeyPair, publicKeyOf } from './key-agreement.js';
import { applyMask } from './mask-expansion.js';
import type { AdvertiseKeys, DeliveredShare, KeysBroadcast, MaskedInput, ShareKeys, SharesDelivery, SurvivorView, UnmaskRequest, UnmaskResponse, ViewSignature } from './messages.js';
import { neighbourhood } from './neighbourhood.js';
import { equalBytes, pairMaskKey, pairSign, selfMaskKey, selfSeedCommitment, shareCommitment } from './derivations.js';
import { dequantiseSum, quantisationErrorBound } from './quantize.js';
import { reconstructSecret, type Share } from './shamir.js';
import { FIELD_BYTES, bytesToBigInt, FIELD_PRIME } from './field.js';

type Step = 'advertise' | 'share' | 'mask' | 'consistency' | 'unmask' | 'done';

export interface BadShare {
  /** Whose secret the share was of. */
  readonly of: string;
  /** The client that revealed it. */
  readonly from: string;
  readonly kind: 'self-seed' | 'secret-key';
}

export interface SecAggResult {
  /** The dequantised sum of the survivors' vectors (float64). */
  readonly sum: Float64Array;
  /** Clients whose vectors are in the sum. */
  readonly survivors: readonly string[];
  /** Clients that did not answer, per step. */
  readonly dropped: { readonly advertise: readonly string[]; readonly shareKeys: readonly string[]; readonly maskedInput: readonly string[]; readonly consistency: readonly string[]; readonly unmasking: readonly string[] };
  readonly badShares: readonly BadShare[];
  /** |sum - true sum| per coordinate is below this (quantize.ts), for inputs inside the clipping range. */
  readonly errorBound: number;
}

function protocolError(message: string, client?: string): never {
  throw new FedloraError('FL_ERR_SECAGG_PROTOCOL', `secure aggregation: ${message}`, client === undefined ? {} : { client });
}

export class SecAggServer {
  private step: Step = 'advertise';
  private readonly graph: Map<string, Set<string>>;
  private readonly keys = new Map<string, AdvertiseKeys>();
  private live = new Set<string>();
  private readonly shareKeys = new Map<string, ShareKeys>();
  private readonly masked = new Set<string>();
  private readonly sum: Uint32Array;
  private readonly responses = new Map<string, UnmaskResponse>();
  private readonly dropped = { advertise: [] as string[], shareKeys: [] as string[], maskedInput: [] as string[], consistency: [] as string[], unmasking: [] as string[] };
  private request: SurvivorView | null = null;
  private readonly viewSignatures = new Map<string, Uint8Array>();
  /** Survivors that signed the view: the ones asked to unmask. */
  private signers = new Set<string>();
  /** Each client's Shamir point (index + 1), and the round's clients as a set. */
  private readonly points: Map<string, number>;

  /**
   * @param signingKeys every client's enrolled Ed25519 public key (32 bytes), by id
   */
  constructor(
    private readonly config: SecAggConfig,
    private readonly signingKeys: ReadonlyMap<string, Uint8Array>,
  ) {
    const missing = config.clients.filter((c) => signingKeys.get(c)?.length !== 32);
    if (missing.length > 0) throw new FedloraError('FL_ERR_SECAGG_CONFIG', `secure aggregation: no enrolled 32-byte signing key for ${missing.map((c) => `'${c}'`).join(', ')}`, { field: 'signingKeys' });
    this.graph = neighbourhood(config.clients, config.degree, config.graphSeed);
    this.sum = new Uint32Array(config.vectorLength);
    this.points = new Map(config.clients.map((c, i) => [c, i + 1]));
  }

  private expect(step: Step, what: string, from?: string): void {
    if (this.step !== step) protocolError(`${what} at step '${this.step}', expected at '${step}'`, from);
  }

  private checkSender(from: string, seen: { has(id: string): boolean }, eligible: { has(id: string): boolean }, what: string): void {
    if (!eligible.has(from)) protocolError(`${what} from '${from}', which is not a live client of this step`, from);
    if (seen.has(from)) protocolError(`${what} from '${from}' twice`, from);
  }

  /** Step 0: a client's public keys. */
  receiveAdvertise(msg: AdvertiseKeys): void {
    this.expect('advertise', 'public keys', msg.from);
    this.checkSender(msg.from, this.keys, this.points, 'public keys');
    if (msg.cPublicKey.length !== 32 || msg.sPublicKey.length !== 32) protocolError(`public keys of '${msg.from}' must have 32 bytes`, msg.from);
    if (!verifyDigest(advertiseDigest(this.config.context, msg.from, msg.cPublicKey, msg.sPublicKey), msg.signature, this.signingKeys.get(msg.from)!)) {
      throw new FedloraError('FL_ERR_SECAGG_IDENTITY', `secure aggregation: the keys advertised by '${msg.from}' are not signed with its enrolled signing key`, { client: msg.from });
    }
    this.keys.set(msg.from, msg);
  }

  /**
   * Checks that every client of `set` keeps at least t neighbours in it; otherwise its secrets
   * could not be rebuilt, so the round fails here, before any input is masked. (Leaving such a
   * client out instead would not help on a Harary graph: its neighbours overlap its neighbourhood
   * and lose as many, so the exclusions cascade.)
   */
  private requireNeighbours(set: Set<string>, step: string): void {
    for (const u of set) {
      let live = 0;
      for (const v of this.graph.get(u)!) if (set.has(v)) live++;
      if (live < this.config.threshold) {
        throw new FedloraError(
          'FL_ERR_SECAGG_DROPOUTS',
          `secure aggregation: after ${step}, '${u}' has ${live} live neighbours, fewer than the threshold ${this.config.threshold}; too many of its neighbours dropped out`,
          { client: u, dropped: [...this.dropped.advertise, ...this.dropped.shareKeys] },
        );
      }
    }
    if (set.size < this.config.minSurvivors) {
      throw new FedloraError('FL_ERR_SECAGG_DROPOUTS', `secure aggregation: ${set.size} live clients after ${step}, fewer than minSurvivors ${this.config.minSurvivors}`);
    }
  }

  /** Ends step 0: per live client, its live neighbours' keys. */
  closeAdvertise(): Map<string, KeysBroadcast> {
    this.expect('advertise', 'closeAdvertise');
    this.dropped.advertise = this.config.clients.filter((c) => !this.keys.has(c));
    this.live = new Set(this.config.clients.filter((c) => this.keys.has(c)));
    this.requireNeighbours(this.live, 'advertising keys');
    this.step = 'share';
    const out = new Map<string, KeysBroadcast>();
    for (const u of this.live) {
      const neighbours = [...this.graph.get(u)!].filter((v) => this.live.has(v)).map((v) => {
        const k = this.keys.get(v)!;
        return { id: v, cPublicKey: k.cPublicKey, sPublicKey: k.sPublicKey, signPublicKey: this.signingKeys.get(v)!, signature: k.signature };
      });
      out.set(u, { neighbours });
    }
    return out;
  }

  /** Step 1: a client's sealed shares, one per live neighbour. */
  receiveShareKeys(msg: ShareKeys): void {
    this.expect('share', 'shares', msg.from);
    this.checkSender(msg.from, this.shareKeys, this.live, 'shares');
    const expected = [...this.graph.get(msg.from)!].filter((v) => this.live.has(v));
    const to = new Set(msg.shares.map((s) => s.to));
    if (to.size !== msg.shares.length || to.size !== expected.length || !expected.every((v) => to.has(v))) {
      protocolError(`'${msg.from}' must send one share to each of its ${expected.length} live neighbours`, msg.from);
    }
    if (msg.selfSeedCommitment.length !== 32 || msg.shares.some((s) => s.selfSeedShareCommitment.length !== 32 || s.secretKeyShareCommitment.length !== 32)) {
      protocolError(`commitments of '${msg.from}' must have 32 bytes`, msg.from);
    }
    this.shareKeys.set(msg.from, msg);
  }

  /** Ends step 1: per client that shared, the sealed shares addressed to it. */
  closeShareKeys(): Map<string, SharesDelivery> {
    this.expect('share', 'closeShareKeys');
    this.dropped.shareKeys = [...this.live].filter((c) => !this.shareKeys.has(c));
    this.live = new Set([...this.live].filter((c) => this.shareKeys.has(c)));
    this.requireNeighbours(this.live, 'sharing keys');
    this.step = 'mask';
    const out = new Map<string, DeliveredShare[]>([...this.live].map((u) => [u, []]));
    for (const u of this.live) {
      for (const s of this.shareKeys.get(u)!.shares) if (this.live.has(s.to)) out.get(s.to)!.push({ from: u, sealed: s.sealed });
    }
    return new Map([...out].map(([k, shares]) => [k, { shares }]));
  }

  /** Step 2: a masked input, added to the running sum at once. */
  receiveMaskedInput(msg: MaskedInput): void {
    this.expect('mask', 'a masked input', msg.from);
    this.checkSender(msg.from, this.masked, this.live, 'masked input');
    if (msg.masked.length !== this.sum.length) protocolError(`masked input of '${msg.from}' has ${msg.masked.length} values, expected ${this.sum.length}`, msg.from);
    const s = this.sum;
    const m = msg.masked;
    for (let i = 0; i < s.length; i++) s[i] = (s[i]! + m[i]!) >>> 0;
    this.masked.add(msg.from);
  }

  /** The live neighbours of u at the masking step (those u exchanged shares and pair masks with). */
  private maskNeighbours(u: string): string[] {
    return [...this.graph.get(u)!].filter((v) => this.live.has(v));
  }

  /** Fails the round when some live client's secret has fewer than t holders left in `holders`. */
  private requireHolders(holders: ReadonlySet<string>, dropped: readonly string[]): void {
    for (const u of this.live) {
      const left = this.maskNeighbours(u).filter((v) => holders.has(v)).length;
      if (left < this.config.threshold) {
        throw new FedloraError(
          'FL_ERR_SECAGG_DROPOUTS',
          `secure aggregation: only ${left} of the neighbours holding shares of '${u}' are left, fewer than the threshold ${this.config.threshold}; its mask cannot be removed`,
          { client: u, dropped },
        );
      }
    }
  }

  /**
   * Ends step 2: the survivor view (who is in the sum, whose pair masks must be removed), sent to
   * every survivor for the consistency check.
   * @throws FL_ERR_SECAGG_DROPOUTS when a secret can no longer be rebuilt (fewer than t of a
   *   client's neighbours left), before any share is revealed
   */
  closeMaskedInput(): SurvivorView {
    this.expect('mask', 'closeMaskedInput');
    const survivors = [...this.live].filter((c) => this.masked.has(c));
    const dropped = [...this.live].filter((c) => !this.masked.has(c));
    this.dropped.maskedInput = dropped;
    if (survivors.length < this.config.minSurvivors) {
      throw new FedloraError('FL_ERR_SECAGG_DROPOUTS', `secure aggregation: ${survivors.length} masked inputs, fewer than minSurvivors ${this.config.minSurvivors}`, { dropped });
    }
    this.requireHolders(this.masked, dropped);
    this.step = 'consistency';
    this.request = { survivors, dropped };
    return this.request;
  }

  /** Step 3: a survivor's signature of the view (checked here too, so a bad one is refused at once). */
  receiveViewSignature(msg: ViewSignature): void {
    this.expect('consistency', 'a view signature', msg.from);
    this.checkSender(msg.from, this.viewSignatures, new Set(this.request!.survivors), 'view signature');
    if (!verifyDigest(viewDigest(this.config.context, this.request!), msg.signature, this.signingKeys.get(msg.from)!)) {
      throw new FedloraError('FL_ERR_SECAGG_INCONSISTENT', `secure aggregation: '${msg.from}' signed another survivor view than the one it was sent`, { client: msg.from });
    }
    this.viewSignatures.set(msg.from, msg.signature);
  }

  /**
   * Ends step 3: per survivor that signed, the unmasking request with the signatures of its
   * neighbours. @throws FL_ERR_SECAGG_DROPOUTS when too few signed to rebuild every secret
   */
  closeConsistency(): Map<string, UnmaskRequest> {
    this.expect('consistency', 'closeConsistency');
    const view = this.request!;
    this.signers = new Set(view.survivors.filter((c) => this.viewSignatures.has(c)));
    this.dropped.consistency = view.survivors.filter((c) => !this.signers.has(c));
    this.requireHolders(this.signers, [...view.dropped, ...this.dropped.consistency]);
    this.step = 'unmask';
    const out = new Map<string, UnmaskRequest>();
    for (const u of this.signers) {
      const signatures = this.maskNeighbours(u)
        .filter((v) => this.signers.has(v))
        .map((v) => ({ from: v, signature: this.viewSignatures.get(v)! }));
      out.set(u, { survivors: view.survivors, dropped: view.dropped, signatures });
    }
    return out;
  }

  /** Step 4: a survivor's revealed shares. */
  receiveUnmask(msg: UnmaskResponse): void {
    this.expect('unmask', 'an unmasking response', msg.from);
    this.checkSender(msg.from, this.responses, this.signers, 'unmasking response');
    this.responses.set(msg.from, msg);
  }

  /** The revealed shares by owner and kind, indexed once (a survivor answers for its k neighbours). */
  private revealedIndex: Map<string, { from: string; y: Uint8Array }[]> | null = null;

  private revealed(owner: string, kind: 'self-seed' | 'secret-key'): { from: string; y: Uint8Array }[] {
    if (this.revealedIndex === null) {
      const index = new Map<string, { from: string; y: Uint8Array }[]>();
      const put = (key: string, from: string, y: Uint8Array) => {
        let list = index.get(key);
        if (list === undefined) index.set(key, (list = []));
        list.push({ from, y });
      };
      for (const [from, r] of this.responses) {
        // The first share a client reveals of an owner counts; a duplicate cannot add a second point.
        const seen = new Set<string>();
        const take = (kind: string, of: string, y: Uint8Array) => {
          const key = `${kind}\0${of}`;
          if (seen.has(key)) return;
          seen.add(key);
          put(key, from, y);
        };
        for (const s of r.selfSeedShares) take('self-seed', s.of, s.y);
        for (const s of r.secretKeyShares) take('secret-key', s.of, s.y);
      }
      this.revealedIndex = index;
    }
    return this.revealedIndex.get(`${kind}\0${owner}`) ?? [];
  }

  /** Collects the shares of `owner`'s secret that match their commitments; reports the others. */
  private goodShares(owner: string, kind: 'self-seed' | 'secret-key', badShares: BadShare[]): Share[] {
    const commitments = new Map(this.shareKeys.get(owner)!.shares.map((s) => [s.to, kind === 'self-seed' ? s.selfSeedShareCommitment : s.secretKeyShareCommitment]));
    const good: Share[] = [];
    for (const { from, y: bytes } of this.revealed(owner, kind)) {
      const commitment = commitments.get(from);
      if (commitment === undefined || !this.live.has(from)) continue;
      const ok = bytes.length === FIELD_BYTES && equalBytes(shareCommitment(kind, this.config.context, owner, from, bytes), commitment);
      const y = ok ? bytesToBigInt(bytes) : FIELD_PRIME;
      if (!ok || y >= FIELD_PRIME) badShares.push({ of: owner, from, kind });
      else good.push({ x: this.points.get(from)!, y });
    }
    return good;
  }

  private rebuild(owner: string, kind: 'self-seed' | 'secret-key', badShares: BadShare[]): Uint8Array {
    const good = this.goodShares(owner, kind, badShares);
    const t = this.config.threshold;
    if (good.length < t) {
      const bad = badShares.filter((b) => b.of === owner && b.kind === kind).map((b) => b.from);
      throw new FedloraError(
        bad.length > 0 ? 'FL_ERR_SECAGG_BAD_SHARE' : 'FL_ERR_SECAGG_DROPOUTS',
        `secure aggregation: ${good.length} good shares of the ${kind} of '${owner}', fewer than the threshold ${t}` + (bad.length > 0 ? `; shares from ${bad.map((b) => `'${b}'`).join(', ')} do not match their commitments` : ''),
        { client: owner, badShareFrom: bad },
      );
    }
    const secret = reconstructSecret(good.slice(0, t));
    const expected = kind === 'self-seed' ? this.shareKeys.get(owner)!.selfSeedCommitment : this.keys.get(owner)!.sPublicKey;
    const actual = secret === null ? null : kind === 'self-seed' ? selfSeedCommitment(this.config.context, owner, secret) : publicKeyOf(secret);
    if (secret === null || actual === null || !equalBytes(actual, expected)) {
      // Every share matched its owner's commitment, so the owner committed to inconsistent shares.
      throw new FedloraError('FL_ERR_SECAGG_BAD_SHARE', `secure aggregation: the ${kind} of '${owner}' rebuilt from committed shares does not match its commitment: '${owner}' dealt inconsistent shares`, { client: owner });
    }
    return secret;
  }

  /**
   * Ends the round: removes the survivors' self masks and the dropped clients' pair masks, and
   * dequantises the sum.
   */
  finish(): SecAggResult {
    this.expect('unmask', 'finish');
    this.step = 'done';
    const { survivors, dropped } = this.request!;
    this.dropped.unmasking = [...this.signers].filter((s) => !this.responses.has(s));
    const badShares: BadShare[] = [];
    const ctx = this.config.context;
    for (const u of survivors) applyMask(this.sum, selfMaskKey(ctx, u, this.rebuild(u, 'self-seed', badShares)), -1);
    for (const u of dropped) {
      const keys = new AgreementKeyPair(this.rebuild(u, 'secret-key', badShares));
      for (const v of this.maskNeighbours(u)) {
        if (!this.masked.has(v)) continue;
        // v added pairSign(v, u) PRG(s_vu); take it away.
        applyMask(this.sum, pairMaskKey(ctx, v, u, keys.agree(this.keys.get(v)!.sPublicKey, v)), pairSign(v, u) === 1 ? -1 : 1);
      }
    }
    return {
      sum: dequantiseSum(this.sum, this.config, survivors.length),
      survivors,
      dropped: this.dropped,
      badShares,
      errorBound: quantisationErrorBound(this.config, survivors.length),
    };
  }
}
