/**
 * Synchronous tensor reads (`dataSync`, `arraySync`, `bufferSync`) made to throw, so that no
 * client path can come to depend on one: tfjs' webgpu backend in Node has no synchronous read
 * (its readSync needs OffscreenCanvas, which Node lacks), so such a path works on wasm and cpu and
 * crashes on the only GPU backend we have.
 *
 * The test suite runs with `FEDLORA_FORBID_SYNC_READS=1` (vitest.config.ts): every process and
 * worker thread that loads client/backend.ts then forbids them, on the cpu and wasm backends too,
 * so a regression fails in CI, not first on a GPU. `npm run lint` forbids the names in the
 * sources as well (eslint.config.js).
 */
import * as tf from '@tensorflow/tfjs';
import { FedloraError } from '../../shared/errors.js';

/** The environment variable that turns the guard on in a process and its worker threads. */
export const FORBID_SYNC_READS_ENV = 'FEDLORA_FORBID_SYNC_READS';

const SYNC_READS = ['dataSync', 'arraySync', 'bufferSync'] as const;
let forbidden = false;

/** Makes every synchronous tensor read throw FL_ERR_BACKEND naming the asynchronous one to use. Idempotent. */
export function forbidSyncReads(): void {
  if (forbidden) return;
  forbidden = true;
  const proto = tf.Tensor.prototype as unknown as Record<string, unknown>;
  for (const name of SYNC_READS) {
    const asyncName = name === 'dataSync' ? 'data' : name === 'arraySync' ? 'array' : 'buffer';
    proto[name] = function refused(): never {
      throw new FedloraError('FL_ERR_BACKEND',
        `synchronous tensor read '${name}()' on a client path: the webgpu backend has none in Node; use 'await t.${asyncName}()'`);
    };
  }
}

/** Turns the guard on when the environment asks for it (the test suite does). */
export function forbidSyncReadsIfAsked(env: NodeJS.ProcessEnv = process.env): void {
  if (env[FORBID_SYNC_READS_ENV] === '1') forbidSyncReads();
}
