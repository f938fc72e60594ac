/* eslint-disable no-restricted-properties -- this file checks that the synchronous reads are refused */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { FORBID_SYNC_READS_ENV } from '../../../client/backends/sync-reads.js';

describe('synchronous tensor reads are refused in the test suite, as on webgpu in Node', () => {
  it('dataSync, arraySync and bufferSync throw a coded error naming the async read; data() still works', async () => {
    expect(process.env[FORBID_SYNC_READS_ENV]).toBe('1');
    const t = tf.tensor1d([1, 2, 3]);
    expect(() => t.dataSync()).toThrow(/FL_ERR_BACKEND: synchronous tensor read 'dataSync\(\)'.*await t\.data\(\)/);
    expect(() => t.arraySync()).toThrow(/FL_ERR_BACKEND: synchronous tensor read 'arraySync\(\)'.*await t\.array\(\)/);
    expect(() => t.bufferSync()).toThrow(/FL_ERR_BACKEND: synchronous tensor read 'bufferSync\(\)'.*await t\.buffer\(\)/);
    expect([...await t.data()]).toEqual([1, 2, 3]);
    t.dispose();
  });

  it('a worker thread that loads client/backend.ts refuses them too (the agent trains in one)', async () => {
    // The worker runs TypeScript through tsx's loader, as the agent's training worker does.
    const entry = new URL('./sync-read-worker.ts', import.meta.url);
    const tsxApi = pathToFileURL(join(dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist/esm/api/index.mjs')).href;
    const code = `import { register } from ${JSON.stringify(tsxApi)}; register(); await import(${JSON.stringify(entry.href)});`;
    const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(code)}`));
    const message = await new Promise<string>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    expect(message).toMatch(/FL_ERR_BACKEND: synchronous tensor read 'dataSync\(\)'/);
  });
});
