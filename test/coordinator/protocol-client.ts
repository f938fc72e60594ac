/**
 * A light client for coordinator tests: a real socket.io-client connection that speaks the
 * protocol of docs/protocol.md with real keys and real sealed, signed envelopes, and sends
 * hand-made adapter updates (typed arrays; no TensorFlow.js).
 */
import { io, type Socket } from 'socket.io-client';
import { SOCKET_NAMESPACE, SOCKET_PATH, type ClientToServerEvents, type Offer, type ServerToClientEvents, type UpdateAck } from '../../shared/protocol/events.js';
import { OfferSchema } from '../../shared/protocol/events.js';
import { authMessage } from '../../shared/protocol/auth.js';
import { fromBase64, toBase64 } from '../../shared/protocol/encoding.js';
import type { ModuleShape } from '../../shared/protocol/job-spec.js';
import { encodeSafetensors } from '../../shared/safetensors/index.js';
import { makeTensor, numel } from '../../shared/tensor.js';
import { generateKeyPairs, type KeyPairs } from '../../privacy/keys.js';
import { sealUpdate } from '../../privacy/envelope.js';
import { signEd25519 } from '../../privacy/ed25519.js';
import { EnrolmentResponseSchema } from '../../shared/protocol/http.js';

type EventName = keyof ServerToClientEvents;
type Payload<E extends EventName> = Parameters<ServerToClientEvents[E]>[0];

export interface JoinOptions {
  jobId: string;
  token?: string;
  clientId?: string;
  keys?: KeyPairs;
  sha256: string;
  modules: ModuleShape[];
  /** Sign the challenge with another key (an impostor). */
  signWith?: KeyPairs;
}

export class TestClient {
  readonly socket: Socket<ServerToClientEvents, ClientToServerEvents>;
  readonly keys: KeyPairs;
  clientId = '';
  coordinatorBoxKey: Uint8Array = new Uint8Array(32);
  private readonly queues = new Map<EventName, unknown[]>();
  private readonly waiters = new Map<EventName, Array<(v: unknown) => void>>();

  constructor(url: string, keys: KeyPairs = generateKeyPairs()) {
    this.keys = keys;
    this.socket = io(`${url}${SOCKET_NAMESPACE}`, { path: SOCKET_PATH, transports: ['websocket'], reconnection: false, forceNew: true });
    for (const name of ['challenge', 'welcome', 'offer', 'round_result', 'round_closed', 'job_end', 'refusal'] as const) {
      this.socket.on(name, ((payload: unknown) => this.push(name, payload)) as never);
    }
    this.socket.on('disconnect', () => this.push('refusal' as EventName, undefined, true));
  }

  private push(name: EventName, payload: unknown, disconnect = false): void {
    if (disconnect) {
      this.disconnected = true;
      for (const w of this.disconnectWaiters.splice(0)) w();
      return;
    }
    const waiters = this.waiters.get(name);
    if (waiters !== undefined && waiters.length > 0) waiters.shift()!(payload);
    else this.queues.set(name, [...(this.queues.get(name) ?? []), payload]);
  }

  disconnected = false;
  private readonly disconnectWaiters: Array<() => void> = [];

  /** Resolves when the server closes the connection. */
  whenDisconnected(): Promise<void> {
    if (this.disconnected) return Promise.resolve();
    return new Promise((resolve) => this.disconnectWaiters.push(resolve));
  }

  /** The next event of this name (buffered: events that came earlier are returned first). */
  next<E extends EventName>(name: E, timeoutMs = 20_000): Promise<Payload<E>> {
    const queued = this.queues.get(name);
    if (queued !== undefined && queued.length > 0) return Promise.resolve(queued.shift() as Payload<E>);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no '${name}' event within ${timeoutMs} ms`)), timeoutMs);
      const list = this.waiters.get(name) ?? [];
      list.push((v) => {
        clearTimeout(timer);
        resolve(v as Payload<E>);
      });
      this.waiters.set(name, list);
    });
  }

  /**
   * The offers of the next round, from whichever `n` of `clients` were selected: event-driven;
   * a waiter that resolves after the first n have arrived puts its offer back for later.
   */
  static offersFrom(clients: readonly TestClient[], n: number, timeoutMs = 20_000): Promise<Array<[TestClient, Offer]>> {
    return new Promise((resolve, reject) => {
      const got: Array<[TestClient, Offer]> = [];
      const timer = setTimeout(() => reject(new Error(`only ${got.length} of ${n} offers within ${timeoutMs} ms`)), timeoutMs);
      for (const c of clients) {
        c.next('offer', 10 * timeoutMs).then(
          (raw) => {
            if (got.length >= n) {
              c.requeue('offer', raw);
              return;
            }
            got.push([c, OfferSchema.parse(raw)]);
            if (got.length === n) {
              clearTimeout(timer);
              resolve(got);
            }
          },
          () => {},
        );
      }
    });
  }

  /** Gives an event back: to the next waiter for it, else to the head of its queue. */
  requeue(name: EventName, payload: unknown): void {
    const waiters = this.waiters.get(name);
    if (waiters !== undefined && waiters.length > 0) waiters.shift()!(payload);
    else this.queues.set(name, [payload, ...(this.queues.get(name) ?? [])]);
  }

  /** Events of this name received and not yet taken. */
  pending(name: EventName): unknown[] {
    return this.queues.get(name) ?? [];
  }

  /** hello -> challenge -> auth -> welcome; rejects with the refusal's code when refused. */
  async join(o: JoinOptions): Promise<Payload<'welcome'>> {
    const hello = {
      protocolVersion: 1 as const,
      jobId: o.jobId,
      ...(o.token !== undefined && { enrolmentToken: o.token }),
      ...(o.clientId !== undefined && { clientId: o.clientId }),
      signPublicKey: toBase64(this.keys.sign.publicKey),
      backend: { name: 'test', device: 'loopback', selfTest: { passed: true } },
      model: { sha256: o.sha256, modules: o.modules },
    };
    const refusal = this.next('refusal').then((r) => Promise.reject(Object.assign(new Error(`${r.code}: ${r.message}`), { code: r.code })));
    this.socket.emit('hello', hello);
    const challenge = await Promise.race([this.next('challenge'), refusal]);
    this.coordinatorBoxKey = fromBase64(challenge.coordinator.boxPublicKey);
    const signer = o.signWith ?? this.keys;
    const signature = signEd25519(authMessage(o.jobId, challenge.nonce, hello.signPublicKey), signer.sign.secretKey);
    this.socket.emit('auth', { signature: toBase64(signature) });
    const welcome = await Promise.race([this.next('welcome'), refusal]);
    refusal.catch(() => {});
    this.clientId = welcome.clientId;
    return welcome;
  }

  /** The next offer, parsed as a client would. */
  async nextOffer(timeoutMs?: number): Promise<Offer> {
    return OfferSchema.parse(await this.next('offer', timeoutMs));
  }

  /**
   * The safetensors payload of an update for an offer: every planned tensor filled by `value`,
   * with the example count and metrics in the metadata.
   */
  static payload(offer: Offer, value: (name: string, index: number) => number, examples = 10, metrics: Record<string, number> = { loss: 1 }): Uint8Array {
    const tensors = offer.plan.updateTensors.map((t) => makeTensor(t.name, t.shape, Float32Array.from({ length: numel(t.shape) }, (_, i) => value(t.name, i))));
    return encodeSafetensors(tensors, { 'fedlora.examples': String(examples), 'fedlora.metrics': JSON.stringify(metrics) });
  }

  /** Seals and signs a payload for the offer's round (or the given binding) and sends it; resolves with the ack. */
  send(offer: Pick<Offer, 'jobId' | 'round' | 'attempt'>, payload: Uint8Array, binding: Partial<{ jobId: string; round: number; attempt: number; clientId: string }> = {}, signer: KeyPairs = this.keys): Promise<UpdateAck> {
    const envelope = sealUpdate(payload, { jobId: offer.jobId, round: offer.round, attempt: offer.attempt, clientId: this.clientId, ...binding }, signer.sign.secretKey, this.coordinatorBoxKey);
    return this.sendRaw({ jobId: offer.jobId, round: offer.round, attempt: offer.attempt, envelope });
  }

  sendRaw(update: { jobId: string; round: number; attempt: number; envelope: Uint8Array }): Promise<UpdateAck> {
    return new Promise((resolve) => this.socket.emit('update', update, resolve));
  }

  close(): void {
    this.socket.disconnect();
  }
}

/**
 * Enrols n hand-driven clients into a job through the real API (one token each, in order) and joins
 * them over socket.io. Each client is also pushed to `track`, which the test closes in teardown.
 * @param api the harness's HTTP call (admin token)
 */
export async function enrolTestClients(
  api: (method: string, path: string) => Promise<{ json: unknown }>,
  url: string,
  o: { jobId: string; sha256: string; modules: readonly ModuleShape[]; n: number; track: TestClient[] },
): Promise<TestClient[]> {
  const out: TestClient[] = [];
  for (let i = 0; i < o.n; i++) {
    const { token } = EnrolmentResponseSchema.parse((await api('POST', `/api/jobs/${o.jobId}/enrolments`)).json);
    const c = new TestClient(url);
    o.track.push(c);
    await c.join({ jobId: o.jobId, token, sha256: o.sha256, modules: [...o.modules] });
    out.push(c);
  }
  return out;
}
