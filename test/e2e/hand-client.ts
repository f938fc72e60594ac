/**
 * A hand-driven protocol client for the e2e tests: a real socket.io-client connection, real keys,
 * real sealed and signed envelopes (privacy/envelope.ts), but updates crafted by the test (bad ones
 * on purpose). No TensorFlow.js, no agent logic: every step is explicit.
 */
import { io, type Socket } from 'socket.io-client';
import { OfferSchema, SOCKET_NAMESPACE, SOCKET_PATH, type ClientToServerEvents, type Offer, type ServerToClientEvents, type UpdateAck, type Welcome } from '../../shared/protocol/events.js';
import type { ModuleShape } from '../../shared/protocol/job-spec.js';
import { authMessage } from '../../shared/protocol/auth.js';
import { fromBase64, toBase64 } from '../../shared/protocol/encoding.js';
import { encodeSafetensors } from '../../shared/safetensors/index.js';
import { makeTensor, numel } from '../../shared/tensor.js';
import { sealUpdate, type EnvelopeBinding } from '../../privacy/envelope.js';
import { signEd25519 } from '../../privacy/ed25519.js';
import { generateKeyPairs, type KeyPairs } from '../../privacy/keys.js';

export class HandClient {
  readonly socket: Socket<ServerToClientEvents, ClientToServerEvents>;
  readonly keys: KeyPairs = generateKeyPairs();
  clientId = '';
  coordinatorBoxKey: Uint8Array = new Uint8Array(32);

  constructor(url: string) {
    this.socket = io(`${url}${SOCKET_NAMESPACE}`, { path: SOCKET_PATH, transports: ['websocket'], reconnection: false, forceNew: true });
  }

  /** hello -> challenge -> auth -> welcome; rejects with `CODE: message` on a refusal. */
  join(jobId: string, token: string, model: { sha256: string; modules: ModuleShape[] }): Promise<Welcome> {
    return new Promise((resolve, reject) => {
      const signPublicKey = toBase64(this.keys.sign.publicKey);
      this.socket.once('refusal', (r) => reject(new Error(`${r.code}: ${r.message}`)));
      this.socket.once('challenge', (c) => {
        this.coordinatorBoxKey = fromBase64(c.coordinator.boxPublicKey);
        this.socket.emit('auth', { signature: toBase64(signEd25519(authMessage(jobId, c.nonce, signPublicKey), this.keys.sign.secretKey)) });
      });
      this.socket.once('welcome', (w) => {
        this.clientId = w.clientId;
        resolve(w);
      });
      this.socket.emit('hello', {
        protocolVersion: 1,
        jobId,
        enrolmentToken: token,
        signPublicKey,
        backend: { name: 'hand', device: 'test', selfTest: { passed: true } },
        model,
      });
    });
  }

  /** The next offer (listening starts now). */
  nextOffer(): Promise<Offer> {
    return new Promise((resolve) => this.socket.once('offer', (raw) => resolve(OfferSchema.parse(raw))));
  }

  /** A payload holding the plan's tensors, each value from `value`, with the protocol's metadata. */
  static payload(offer: Offer, value: (name: string, i: number) => number, shapeOf: (name: string, shape: number[]) => number[] = (_, s) => s): Uint8Array {
    const tensors = offer.plan.updateTensors.map((t) => {
      const shape = shapeOf(t.name, t.shape);
      return makeTensor(t.name, shape, Float32Array.from({ length: numel(shape) }, (_, i) => value(t.name, i)));
    });
    return encodeSafetensors(tensors, { 'fedlora.examples': '10', 'fedlora.metrics': JSON.stringify({ loss: 1 }) });
  }

  /** Seals and signs a payload for the offer (binding overridable) with this client's key. */
  seal(offer: Offer, payload: Uint8Array, binding: Partial<EnvelopeBinding> = {}): Uint8Array {
    return sealUpdate(payload, { jobId: offer.jobId, round: offer.round, attempt: offer.attempt, clientId: this.clientId, ...binding }, this.keys.sign.secretKey, this.coordinatorBoxKey);
  }

  /** Sends an envelope for the offer's round; resolves with the ack. */
  send(offer: Offer, envelope: Uint8Array, jobId = offer.jobId): Promise<UpdateAck> {
    return new Promise((resolve) => this.socket.emit('update', { jobId, round: offer.round, attempt: offer.attempt, envelope }, resolve));
  }

  close(): void {
    this.socket.disconnect();
  }
}
