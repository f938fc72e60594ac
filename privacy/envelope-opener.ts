/**
 * Opens update envelopes with the decryption in worker threads.
 *
 * tweetnacl's XSalsa20-Poly1305 runs in JS at roughly 40-100 MB/s per core: on the main thread a
 * 33 MB update blocks the coordinator's event loop (socket reads, heartbeats) for about half a
 * second, and a round's updates are opened one after another. An EnvelopeOpener keeps every cheap
 * check on the main thread (framing, signature through node:crypto, binding, nonces: exactly
 * openUpdate's checks and codes, in the same order) and sends only crypto_box_open to a pool of
 * workers, so updates are decrypted in parallel and the event loop stays responsive.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { FedloraError } from '../shared/errors.js';
import { fromBase64 } from '../shared/protocol/encoding.js';
import { boxedCiphertext, checkEnvelope, finishOpening, type ExpectedBinding, type OpenedUpdate, type SigningKeyLookup } from './envelope.js';
import type { NonceStore } from './nonces.js';

interface Job {
  readonly id: number;
  readonly boxed: Uint8Array;
  readonly nonce: Uint8Array;
  readonly ephemeralPublicKey: Uint8Array;
  readonly secretKey: Uint8Array;
  readonly resolve: (plain: Uint8Array | null) => void;
  readonly reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  job: Job | undefined;
}

const WORKER_URL = new URL('./envelope-decrypt-worker.mjs', import.meta.url);

/** A pool of decryption workers with openUpdate's interface. Call {@link close} when done. */
export class EnvelopeOpener {
  /** Worker threads in the pool. */
  readonly threads: number;
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextId = 0;
  private closed = false;

  /**
   * @param options.threads worker threads; @default os.availableParallelism() - 1, at least 1
   *   (one core stays with the event loop). Workers start on first use and do not keep the
   *   process alive while idle.
   */
  constructor(options: { threads?: number } = {}) {
    const threads = options.threads ?? Math.max(1, availableParallelism() - 1);
    if (!Number.isInteger(threads) || threads < 1) {
      throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `threads must be an integer >= 1, got ${threads}`);
    }
    this.threads = threads;
  }

  /**
   * Opens an envelope: the same arguments, checks, order and error codes as
   * {@link import('./envelope.js').openUpdate}. The envelope is copied to a worker, never
   * modified or detached.
   */
  async open(
    envelope: Uint8Array,
    expected: ExpectedBinding,
    clientSigningPublicKey: SigningKeyLookup,
    coordinatorBoxSecretKey: Uint8Array,
    nonceStore: NonceStore,
    options: { maxBytes?: number } = {},
  ): Promise<OpenedUpdate> {
    if (this.closed) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', 'this EnvelopeOpener was closed');
    if (!(coordinatorBoxSecretKey instanceof Uint8Array) || coordinatorBoxSecretKey.length !== 32) {
      throw new FedloraError('FL_ERR_INVALID_ARGUMENT', 'coordinatorBoxSecretKey must be 32 bytes (an X25519 secret key)');
    }
    const checked = await checkEnvelope(envelope, expected, clientSigningPublicKey, nonceStore, options);
    const { header } = checked;
    const plain = await new Promise<Uint8Array | null>((resolve, reject) => {
      this.queue.push({
        id: this.nextId++,
        boxed: boxedCiphertext(checked.parts).slice(), // the worker's own copy, transferred
        nonce: fromBase64(header.nonce),
        ephemeralPublicKey: fromBase64(header.ephemeralPublicKey),
        secretKey: coordinatorBoxSecretKey.slice(),
        resolve,
        reject,
      });
      this.dispatch();
    });
    return finishOpening(checked, plain === null ? null : plain.subarray(32), nonceStore);
  }

  /** Stops the workers; pending openings fail. */
  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new FedloraError('FL_ERR_ENVELOPE_DECRYPT', 'the EnvelopeOpener was closed before this envelope was decrypted'));
    await Promise.all(this.slots.splice(0).map((slot) => slot.worker.terminate()));
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let slot = this.slots.find((s) => s.job === undefined);
      if (slot === undefined && this.slots.length < this.threads) slot = this.spawn();
      if (slot === undefined) return; // all busy: the next answer dispatches again
      const job = this.queue.shift()!;
      slot.job = job;
      slot.worker.ref(); // a job in flight keeps the process alive
      const { boxed, nonce, ephemeralPublicKey, secretKey } = job;
      slot.worker.postMessage({ id: job.id, boxed, nonce, ephemeralPublicKey, secretKey }, [boxed.buffer as ArrayBuffer]); // slice() made a plain ArrayBuffer
    }
  }

  private spawn(): Slot {
    const slot: Slot = { worker: new Worker(WORKER_URL), job: undefined };
    slot.worker.unref();
    slot.worker.on('message', (answer: { id: number; plain: Uint8Array | null }) => {
      const job = slot.job;
      if (job === undefined || job.id !== answer.id) return;
      slot.job = undefined;
      slot.worker.unref();
      job.resolve(answer.plain);
      this.dispatch();
    });
    // A worker that dies (an exception, or an exit for any reason): fail its job, drop it from the
    // pool so the next dispatch starts a fresh one, carry on with the queue.
    const lost = (why: string) => {
      const job = slot.job;
      slot.job = undefined;
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      job?.reject(new FedloraError('FL_ERR_ENVELOPE_DECRYPT', `the decryption worker ${why}`));
      if (!this.closed) this.dispatch();
    };
    slot.worker.on('error', (e: Error) => lost(`failed: ${e.message}`));
    slot.worker.on('exit', (code: number) => lost(`exited with code ${code}`));
    this.slots.push(slot);
    return slot;
  }
}
