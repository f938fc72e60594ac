/**
 * The agent's side of a securely aggregated round (docs/protocol.md, "Secure rounds"): wraps
 * privacy/secagg's SecAggClient and answers the coordinator's `secagg` steps.
 *
 * Order: the public keys go out as soon as the offer arrives, the sealed shares as soon as the
 * neighbours' keys do; the masked vector only once both the training has finished and the shares
 * addressed to this client have arrived; its signature of the survivor view when the coordinator
 * sends it (the consistency check), and the unmasking answer on request. The keys and the view
 * are signed with the client's enrolled Ed25519 key; neighbours' keys are accepted only under the
 * signing keys the agent pinned for them (privacy/secagg/peer-pins.ts). The vector is the delta
 * of each planned update tensor from the offered state (the tensor itself where the state has
 * none, as for Fed-SB's init gradients), flattened in the plan's order, clipped to L2 norm C and,
 * with distributed DP, noised with this client's share before masking.
 */
import { FedloraError } from '../../shared/errors.js';
import type { Offer, OfferSecureAggregation, SecAggAck, SecAggServerMessage } from '../../shared/protocol/events.js';
import { decodeSafetensors } from '../../shared/safetensors/index.js';
import { numel } from '../../shared/tensor.js';
import { clipL2, l2Norm } from '../../privacy/clipping.js';
import {
  SecAggClient,
  addNoiseShare,
  decodeKeysBroadcast,
  decodeSharesDelivery,
  decodeSurvivorView,
  decodeUnmaskRequest,
  encodeMaskedInputBinary,
  encodeMessage,
  secAggConfig,
  signKeyFingerprint,
  type SecAggAuth,
  type SharesDelivery,
} from '../../privacy/secagg/index.js';

/** The file in the agent's state folder that pins secure aggregation peers' signing keys. */
export const PEER_PINS_FILE = 'peer-pins.json';

type ClientStep = 'advertise' | 'share_keys' | 'masked_input' | 'consistency' | 'unmask';

export interface SecureRoundIo {
  /** Emits one step's message; resolves with the coordinator's ack. */
  readonly send: (step: ClientStep, message: unknown) => Promise<SecAggAck>;
  /** A line for the agent's log. */
  readonly info: (line: string) => void;
  /** The step failed here or was refused there: this client is out of the round's sum. */
  readonly failed: (error: FedloraError) => void;
  /** The masked vector was accepted. */
  readonly maskedAccepted: () => void;
}

/**
 * The flat vector this client masks: per planned update tensor, in the plan's order, the trained
 * values minus the offered ones, clipped to L2 norm `clipNorm` and noised when the round says so.
 * @returns the vector and the L2 norm before clipping
 */
export function secureVector(offer: Offer, payload: Uint8Array): { vector: Float64Array; norm: number } {
  const settings = offer.secureAggregation;
  if (settings === undefined) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', 'this offer is not securely aggregated');
  const trained = new Map(decodeSafetensors(payload, 'the trained update').tensors.map((t) => [t.name, t.data]));
  const offered = new Map(decodeSafetensors(offer.state, 'the offered state').tensors.map((t) => [t.name, t.data]));
  const deltas = offer.plan.updateTensors.map((t) => {
    const x = trained.get(t.name);
    const size = numel(t.shape);
    if (x === undefined || x.length !== size) throw new FedloraError('FL_ERR_UPDATE_TENSORS', `secure round: the trained update has no tensor '${t.name}' of ${size} values`, { tensor: t.name });
    const base = offered.get(t.name);
    if (base === undefined) return Float32Array.from(x);
    if (base.length !== size) throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `secure round: the offered '${t.name}' has ${base.length} values, the plan ${size}`, { tensor: t.name });
    const d = new Float32Array(size);
    for (let i = 0; i < size; i++) d[i] = x[i]! - base[i]!;
    return d;
  });
  const { clipped: parts, norm } = settings.clipNorm === undefined ? { clipped: deltas, norm: l2Norm(deltas) } : clipL2(deltas, settings.clipNorm);
  const vector = new Float64Array(settings.vectorLength);
  let offset = 0;
  for (const p of parts) {
    vector.set(p, offset);
    offset += p.length;
  }
  if (offset !== settings.vectorLength) throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `secure round: the plan's tensors hold ${offset} values, the round's vector ${settings.vectorLength}`);
  if (settings.noise !== undefined) addNoiseShare(vector, settings.noise.noiseMultiplier, settings.clipNorm!, settings.noise.minHonestClients);
  return { vector, norm };
}

/** Clients whose fingerprint this process has printed. */
const announced = new Set<string>();

export class AgentSecureRound {
  private readonly client: SecAggClient;
  private delivery: SharesDelivery | null = null;
  private vector: Float64Array | null = null;
  private maskedSent = false;
  private over = false;

  constructor(
    private readonly offer: Offer & { secureAggregation: OfferSecureAggregation },
    private readonly clientId: string,
    private readonly io: SecureRoundIo,
    private readonly auth: SecAggAuth,
  ) {
    // the offer's settings are SecAggSettings plus the client-side clip and noise
    this.client = new SecAggClient(secAggConfig(offer.secureAggregation), clientId, auth);
  }

  /** Step 0: advertise this round's two public keys. */
  start(): void {
    if (!announced.has(this.clientId)) {
      announced.add(this.clientId);
      // what other data owners compare, out of band, with the pins their agents log
      this.io.info(`secure aggregation: this client's signing key fingerprint is ${signKeyFingerprint(this.auth.identity.signSecretKey.subarray(32, 64))}`);
    }
    this.step('advertise', () => encodeMessage(this.client.advertiseKeys()));
  }

  /** A coordinator message of this round. */
  onServer(m: SecAggServerMessage): void {
    if (this.over) return;
    switch (m.step) {
      case 'keys':
        this.step('share_keys', () => encodeMessage(this.client.shareKeys(decodeKeysBroadcast(m.message))));
        break;
      case 'shares':
        this.delivery = decodeSharesDelivery(m.message);
        this.maybeMask();
        break;
      case 'survivors':
        this.step('consistency', () => encodeMessage(this.client.consistencyCheck(decodeSurvivorView(m.message))));
        break;
      case 'unmask_request':
        this.step('unmask', () => encodeMessage(this.client.unmask(decodeUnmaskRequest(m.message))));
        break;
    }
  }

  /** The training finished: mask its vector once the shares are here. */
  trained(payload: Uint8Array): void {
    if (this.over) return;
    try {
      const { vector, norm } = secureVector(this.offer, payload);
      const c = this.offer.secureAggregation.clipNorm;
      if (c !== undefined && norm > c) this.io.info(`round ${this.offer.round}: update norm ${norm.toPrecision(4)} clipped to ${c} for the secure sum`);
      this.vector = vector;
    } catch (e) {
      this.fail(e);
      return;
    }
    this.maybeMask();
  }

  /** The round ended for this client (closed, superseded, agent stopping). */
  abandon(): void {
    this.over = true;
  }

  private maybeMask(): void {
    if (this.over || this.maskedSent || this.delivery === null || this.vector === null) return;
    this.maskedSent = true;
    const delivery = this.delivery;
    const vector = this.vector;
    // the vector travels as binary (socket.io attachments), the other steps as JSON
    this.step('masked_input', () => encodeMaskedInputBinary(this.client.maskedInput(delivery, vector)), () => {
      if (this.client.clippedCoordinates > 0) this.io.info(`round ${this.offer.round}: ${this.client.clippedCoordinates} coordinates clipped to the secure range [-${this.offer.secureAggregation.clipRange}, ${this.offer.secureAggregation.clipRange}]`);
      this.io.maskedAccepted();
    });
    this.vector = null;
  }

  /** Makes one step's wire message (the protocol's own checks may refuse) and sends it. */
  private step(step: ClientStep, make: () => unknown, onAccepted?: () => void): void {
    let message: unknown;
    try {
      message = make();
    } catch (e) {
      this.fail(e);
      return;
    }
    void this.io.send(step, message).then(
      (ack) => {
        if (ack.ok) onAccepted?.();
        else this.fail(new FedloraError('FL_ERR_SECAGG_PROTOCOL', `the coordinator refused this client's '${step}' message: ${ack.error.code}: ${ack.error.message}`));
      },
      (e: unknown) => this.fail(e),
    );
  }

  private fail(e: unknown): void {
    if (this.over) return;
    this.over = true;
    this.io.failed(e instanceof FedloraError ? e : new FedloraError('FL_ERR_SECAGG_PROTOCOL', `secure round: ${(e as Error).message}`, {}, { cause: e }));
  }
}
