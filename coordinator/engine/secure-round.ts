/**
 * One securely aggregated round attempt on the coordinator: drives privacy/secagg's SecAggServer
 * through its five steps over the clients' `secagg` events (docs/protocol.md, "Secure rounds"):
 * keys, shares, masked inputs, the consistency check (each survivor signs the survivor view) and
 * unmasking. Clients sign their keys and views with their enrolled Ed25519 keys (`signingKeys`).
 *
 * Each step closes as soon as every client still expected in it has answered or disconnected
 * (the runner tells `clientGone`; the offered clients were all connected when the round began),
 * else at its timer: the key-exchange and unmasking steps wait `stepTimeoutMs`; the masked-input
 * step waits for the round deadline (training happens before it) or closes early at the quorum.
 * Whatever SecAggServer refuses (a message at the wrong step, from the wrong client, malformed)
 * is thrown back to the caller, which answers the client with the reason; the round goes on.
 * A step that cannot continue (too many dropouts, bad shares beyond the threshold) ends the
 * round with `onFailure` and the coded error: never a wrong sum.
 */
import { FedloraError, isFedloraError } from '../../shared/errors.js';
import type { SecAggClientMessage } from '../../shared/protocol/events.js';
import {
  SecAggServer,
  decodeAdvertiseKeys,
  decodeMaskedInput,
  decodeShareKeys,
  decodeUnmaskResponse,
  decodeViewSignature,
  encodeMessage,
  type SecAggConfig,
  type SecAggResult,
} from '../../privacy/secagg/index.js';

export type SecureStep = 'advertise' | 'share_keys' | 'masked_input' | 'consistency' | 'unmask' | 'done';

export interface SecureRoundHooks {
  /** Sends a coordinator message of `step` to one client. */
  readonly send: (clientId: string, step: 'keys' | 'shares' | 'survivors' | 'unmask_request', message: unknown) => void;
  readonly onResult: (result: SecAggResult) => void;
  readonly onFailure: (error: FedloraError) => void;
  /** Told after each step closes (logs, dashboard). */
  readonly onStep?: (closed: SecureStep, live: number) => void;
}

export class SecureRound {
  private readonly server: SecAggServer;
  private stepName: SecureStep = 'advertise';
  /** Clients expected to answer the current step. */
  private expected: Set<string>;
  private readonly answered = new Set<string>();
  /** Clients that disconnected during the round: never waited for again, even if they come back. */
  private readonly departed = new Set<string>();
  /** Bytes each client sent in accepted messages of all four steps (JSON as on the wire), by client. */
  readonly uploadBytes = new Map<string, number>();
  /** Clients whose masked input was accepted. */
  readonly masked = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private closing = false;

  /**
   * @param quorum masked inputs at which the masked-input step closes without waiting for the rest
   * @param signingKeys each offered client's enrolled Ed25519 public key, relayed to its neighbours
   */
  constructor(
    readonly config: SecAggConfig,
    private readonly stepTimeoutMs: number,
    private readonly quorum: number,
    private readonly hooks: SecureRoundHooks,
    signingKeys: ReadonlyMap<string, Uint8Array>,
  ) {
    this.server = new SecAggServer(config, signingKeys);
    this.expected = new Set(config.clients);
    this.arm(stepTimeoutMs);
  }

  get step(): SecureStep {
    return this.stepName;
  }

  /**
   * Takes one client's message.
   * @throws FedloraError (FL_ERR_SECAGG_PROTOCOL for a message at the wrong step, naming another
   *   sender, or malformed) with the reason to answer the client
   */
  receive(clientId: string, m: Pick<SecAggClientMessage, 'step' | 'message'>, bytes: number): void {
    if (this.stepName === 'done') throw new FedloraError('FL_ERR_ROUND_STATE', 'the secure round has ended');
    if (m.step !== this.stepName) throw new FedloraError('FL_ERR_SECAGG_PROTOCOL', `secure aggregation: '${m.step}' message while the round is at step '${this.stepName}'`, { client: clientId });
    const from = (m.message as { from?: unknown } | null)?.from;
    if (from !== clientId) {
      throw new FedloraError('FL_ERR_SECAGG_PROTOCOL', `secure aggregation: the message says it is from ${JSON.stringify(from ?? null)}, but the connection is client '${clientId}'`, { client: clientId });
    }
    switch (m.step) {
      case 'advertise':
        this.server.receiveAdvertise(decodeAdvertiseKeys(m.message));
        break;
      case 'share_keys':
        this.server.receiveShareKeys(decodeShareKeys(m.message));
        break;
      case 'masked_input':
        this.server.receiveMaskedInput(decodeMaskedInput(m.message));
        this.masked.add(clientId);
        break;
      case 'consistency':
        this.server.receiveViewSignature(decodeViewSignature(m.message));
        break;
      case 'unmask':
        this.server.receiveUnmask(decodeUnmaskResponse(m.message));
        break;
    }
    this.answered.add(clientId);
    this.uploadBytes.set(clientId, (this.uploadBytes.get(clientId) ?? 0) + bytes);
    this.maybeClose();
  }

  /** A client disconnected: it is out of the round, and the step may not need to wait any more. */
  clientGone(clientId: string): void {
    this.departed.add(clientId);
    this.maybeClose();
  }

  /** The round deadline: the masked-input step closes with what it has; an earlier step fails. */
  deadlineReached(): void {
    if (this.stepName === 'masked_input') this.closeNow();
    else if (this.stepName === 'advertise' || this.stepName === 'share_keys') {
      this.end(new FedloraError('FL_ERR_SECAGG_DROPOUTS', `secure aggregation: the round deadline passed during step '${this.stepName}'`));
    }
  }

  /** Stops the timers; nothing more is sent or reported. */
  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.stepName = 'done';
  }

  private arm(ms: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = ms === Infinity ? undefined : setTimeout(() => this.closeNow(), ms);
  }

  private maybeClose(): void {
    if (this.stepName === 'done' || this.closing) return;
    const waiting = [...this.expected].some((id) => !this.answered.has(id) && !this.departed.has(id));
    const quorum = this.stepName === 'masked_input' && this.answered.size >= this.quorum;
    if (!waiting || quorum) {
      // from a macrotask: the caller is inside a socket handler and still owes its ack
      this.closing = true;
      setImmediate(() => {
        this.closing = false;
        this.closeNow();
      });
    }
  }

  private closeNow(): void {
    const step = this.stepName;
    if (step === 'done') return;
    try {
      switch (step) {
        case 'advertise': {
          const broadcasts = this.server.closeAdvertise();
          this.next('share_keys', broadcasts.keys(), this.stepTimeoutMs);
          for (const [id, b] of broadcasts) this.hooks.send(id, 'keys', encodeMessage(b));
          break;
        }
        case 'share_keys': {
          const deliveries = this.server.closeShareKeys();
          // training runs before the masked input: wait for the round deadline (deadlineReached)
          this.next('masked_input', deliveries.keys(), Infinity);
          for (const [id, d] of deliveries) this.hooks.send(id, 'shares', encodeMessage(d));
          break;
        }
        case 'masked_input': {
          const view = this.server.closeMaskedInput();
          this.next('consistency', view.survivors, this.stepTimeoutMs);
          for (const id of view.survivors) this.hooks.send(id, 'survivors', encodeMessage(view));
          break;
        }
        case 'consistency': {
          const requests = this.server.closeConsistency();
          this.next('unmask', requests.keys(), this.stepTimeoutMs);
          for (const [id, request] of requests) this.hooks.send(id, 'unmask_request', encodeMessage(request));
          break;
        }
        case 'unmask': {
          const result = this.server.finish();
          this.stop();
          this.hooks.onStep?.(step, result.survivors.length);
          this.hooks.onResult(result);
          return;
        }
      }
      this.hooks.onStep?.(step, this.expected.size);
    } catch (e) {
      this.end(isFedloraError(e) ? e : new FedloraError('FL_ERR_INTERNAL', `secure aggregation failed at step '${step}': ${(e as Error).message}`, {}, { cause: e }));
    }
  }

  private next(step: SecureStep, expected: Iterable<string>, timeoutMs: number): void {
    this.stepName = step;
    this.expected = new Set(expected);
    this.answered.clear();
    this.arm(timeoutMs);
    // everyone expected may already be gone
    this.maybeClose();
  }

  private end(error: FedloraError): void {
    this.stop();
    this.hooks.onFailure(error);
  }
}
