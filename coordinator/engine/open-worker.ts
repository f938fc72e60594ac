/**
 * Worker-thread entry of WorkerPoolOpener (update-opener.ts): opens and decodes updates and sends
 * the trainable factors back as transferred buffers, or the coded error.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isFedloraError } from '../../shared/errors.js';
import { openAndDecode, type OpenRequest, type WorkerReply } from './update-opener.js';

const boxSecretKey = (workerData as { boxSecretKey: Uint8Array }).boxSecretKey;

parentPort!.on('message', (message: OpenRequest & { id: number }) => {
  const { id } = message;
  openAndDecode(message, boxSecretKey).then(
    (r) => {
      const factors = [...r.update.adapter.factors.entries()];
      const buffers = new Set<ArrayBuffer>();
      for (const [, f] of factors) for (const a of [f.A, f.B, f.R]) if (a !== undefined) buffers.add(a.buffer as ArrayBuffer);
      // Fed-SB's init phase: the gradients, copied (their buffers may share the payload's)
      const gradients = r.update.gradients === undefined ? undefined : [...r.update.gradients].map(([k, g]): [string, Float32Array] => [k, g.slice()]);
      const reply: WorkerReply = { id, ok: true, nonce: r.nonce, numExamples: r.update.numExamples, metrics: { ...r.metrics }, layout: r.update.adapter.layout, factors, ...(gradients !== undefined && { gradients }) };
      parentPort!.postMessage(reply, [...buffers]);
    },
    (e: unknown) => {
      const reply: WorkerReply = isFedloraError(e)
        ? { id, ok: false, code: e.code, message: e.reason, details: JSON.parse(JSON.stringify(e.details)) as Record<string, unknown> }
        : { id, ok: false, code: 'FL_ERR_INTERNAL', message: `unexpected error while opening an update: ${(e as Error).message}`, details: {} };
      parentPort!.postMessage(reply);
    },
  );
});

// Tells the pool this thread has loaded its modules and can take work.
parentPort!.postMessage({ ready: true });
