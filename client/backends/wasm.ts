/**
 * The WebAssembly backend (XNNPACK, SIMD). Under Node tfjs disables its threads, so it runs on one
 * core (~35 GFLOP/s on the dev machine, docs/training.md, "Backends"); parallelism comes from worker threads.
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { BackendCandidate } from './types.js';

let pathsSet = false;

export const wasmBackend: BackendCandidate = {
  name: 'wasm',
  tfName: 'wasm',
  async load() {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    if (!pathsSet) {
      // The .wasm binaries sit beside the package's main file (dist/); point tfjs there so it
      // reads them from disk whatever the working directory.
      const main = createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm');
      wasm.setWasmPaths(path.dirname(main) + path.sep);
      pathsSet = true;
    }
    if (!(await tf.setBackend('wasm'))) throw new Error('tf.setBackend("wasm") failed (the .wasm binary did not load)');
    await tf.ready();
    const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
    const threads = wasm.getThreadsCount();
    return { device: `wasm ${simd ? 'SIMD' : 'no SIMD'}, ${threads} thread${threads === 1 ? '' : 's'}, ${os.cpus()[0]?.model ?? 'unknown cpu'}` };
  },
};
