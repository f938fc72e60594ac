/**
 * Opening and decoding updates, in the coordinator's thread or in worker threads.
 *
 * Opening an envelope (Ed25519 check, nacl.box decryption in pure JS) and decoding its tensors is
 * the coordinator's main per-update cost (~50 ms per MiB here, docs/coordinator.md). A pool of
 * worker threads does it off the event loop, in parallel, while the main thread keeps receiving and
 * aggregating. Replay protection stays on the main thread: openers accept any nonce, and the
 * runner records the nonce atomically after the opener returns (docs/architecture.md, "Figures the design started from": receive in parallel).
 */
import { Worker } from 'node:worker_threads';
import type { ModuleFactors } from '../../shared/adapter.js';
import { ERROR_CODES, FedloraError, type ErrorCode } from '../../shared/errors.js';
import type { Plan } from '../../shared/protocol/events.js';
import type { ClientUpdate } from '../../aggregation/strategy.js';
import { openUpdate, type ExpectedBinding } from '../../privacy/envelope.js';
import type { NonceStore } from '../../privacy/nonces.js';
import { decodeUpdate } from './update-decoder.js';
import { workerEntryUrl } from '../../shared/worker-entry.js';

export interface OpenRequest {
  readonly envelope: Uint8Array;
  readonly expected: ExpectedBinding;
  readonly signPublicKey: Uint8Array;
  readonly plan: Plan;
  readonly source: string;
  readonly maxBytes: number;
}

export interface OpenResult {
  /** The envelope's nonce, for the replay check the caller makes. */
  readonly nonce: string;
  readonly update: ClientUpdate;
  readonly metrics: Readonly<Record<string, number>>;
}

export interface UpdateOpener {
  /**
   * Resolves when the opener can take work (worker threads have loaded their modules).
   * `open` may detach (transfer) `request.envelope`'s buffer: callers must not read it afterwards.
   */
  readonly ready: Promise<void>;
  open(request: OpenRequest): Promise<OpenResult>;
  close(): Promise<void>;
}

/** Envelopes at least this large are transferred to the worker when they own their buffer. */
const TRANSFER_MIN_BYTES = 64 * 1024;

/** Accepts every nonce: the runner checks replays on its own thread, after opening. */
const ANY_NONCE: NonceStore = { has: () => false, checkAndAdd: () => true };

/** Opens and decodes one update in the calling thread. */
export async function openAndDecode(request: OpenRequest, boxSecretKey: Uint8Array): Promise<OpenResult> {
  const opened = await openUpdate(request.envelope, request.expected, request.signPublicKey, boxSecretKey, ANY_NONCE, { maxBytes: request.maxBytes });
  const decoded = decodeUpdate(opened.payload, request.plan, request.source);
  return { nonce: opened.header.nonce, update: decoded.update, metrics: decoded.metrics };
}

/** In the coordinator's own thread (`engine.openWorkers: 0`). */
export class InlineOpener implements UpdateOpener {
  readonly ready = Promise.resolve();
  constructor(private readonly boxSecretKey: Uint8Array) {}
  open(request: OpenRequest): Promise<OpenResult> {
    return openAndDecode(request, this.boxSecretKey);
  }
  async close(): Promise<void> {}
}

/** What a worker sends back: the result with the factors as transferable arrays, or a coded error. */
export type WorkerReply =
  | { id: number; ok: true; nonce: string; numExamples: number; metrics: Record<string, number>; layout: ClientUpdate['adapter']['layout']; factors: Array<[string, ModuleFactors]>; gradients?: Array<[string, Float32Array]> }
  | { id: number; ok: false; code: string; /** the reason, without the code prefix */ message: string; details: Record<string, unknown> };

/**
 * The worker entry's URL. Under tsx or vitest the sources are TypeScript, which a worker thread of
 * Node 20 cannot load by itself: the entry then registers tsx's loader first (a data: URL module).
 */
function workerUrl(): URL {
  return workerEntryUrl(new URL('./open-worker.ts', import.meta.url));
}

interface Pending {
  resolve: (r: OpenResult) => void;
  reject: (e: Error) => void;
  source: string;
}

/** A fixed pool of worker threads; each request goes to the worker with the fewest in flight. */
export class WorkerPoolOpener implements UpdateOpener {
  private readonly workers: Array<{ worker: Worker; inFlight: number }> = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private closed = false;
  readonly ready: Promise<void>;

  /**
   * @param size worker threads, >= 1
   * @param boxSecretKey the coordinator's X25519 secret key, handed to each worker once
   */
  constructor(size: number, boxSecretKey: Uint8Array) {
    const url = workerUrl();
    const ready: Array<Promise<void>> = [];
    for (let i = 0; i < size; i++) {
      const worker = new Worker(url, { workerData: { boxSecretKey } });
      const slot = { worker, inFlight: 0 };
      ready.push(
        new Promise<void>((resolve, reject) => {
          worker.once('error', reject);
          worker.on('message', (reply: WorkerReply | { ready: true }) => {
            if ('ready' in reply) {
              resolve();
              return;
            }
            slot.inFlight--;
            this.settle(reply);
          });
        }),
      );
      worker.on('error', (e) => this.failAll(e));
      this.workers.push(slot);
    }
    // Referenced while they load (so a process waiting on `ready` stays alive), then unreferenced:
    // idle workers never keep a process from exiting.
    this.ready = Promise.all(ready).then(() => {
      for (const w of this.workers) w.worker.unref();
    });
    this.ready.catch(() => {}); // start() awaits it and reports the failure
  }

  private settle(reply: WorkerReply): void {
    const p = this.pending.get(reply.id);
    if (p === undefined) return;
    this.pending.delete(reply.id);
    if (reply.ok) {
      const update: ClientUpdate = { adapter: { layout: reply.layout, factors: new Map(reply.factors) }, numExamples: reply.numExamples, source: p.source, ...(reply.gradients !== undefined && { gradients: new Map(reply.gradients) }) };
      p.resolve({ nonce: reply.nonce, update, metrics: reply.metrics });
    } else {
      const code = (reply.code in ERROR_CODES ? reply.code : 'FL_ERR_INTERNAL') as ErrorCode;
      p.reject(new FedloraError(code, reply.message, reply.details));
    }
  }

  private failAll(e: Error): void {
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(new FedloraError('FL_ERR_INTERNAL', `an update-opening worker failed: ${e.message}`, {}, { cause: e }));
    }
  }

  open(request: OpenRequest): Promise<OpenResult> {
    if (this.closed) return Promise.reject(new FedloraError('FL_ERR_INTERNAL', 'the update-opening pool is closed'));
    const slot = this.workers.reduce((a, b) => (b.inFlight < a.inFlight ? b : a));
    const id = this.nextId++;
    // Transferred, not copied, when the view owns its whole buffer (large socket.io messages: ws
    // allocates one buffer per message and drops it after delivery); otherwise an exact copy,
    // since the bytes may be a view into a larger, shared socket buffer.
    const owned = request.envelope.byteOffset === 0 && request.envelope.byteLength === request.envelope.buffer.byteLength && request.envelope.buffer instanceof ArrayBuffer;
    const envelope = owned && request.envelope.byteLength >= TRANSFER_MIN_BYTES ? request.envelope : request.envelope.slice();
    return new Promise<OpenResult>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, source: request.source });
      slot.inFlight++;
      slot.worker.postMessage(
        { id, envelope, expected: request.expected, signPublicKey: request.signPublicKey, plan: request.plan, source: request.source, maxBytes: request.maxBytes },
        [envelope.buffer as ArrayBuffer],
      );
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.failAll(new Error('pool closed'));
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }
}
