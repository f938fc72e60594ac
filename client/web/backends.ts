/**
 * The browser's TensorFlow.js backends, in the order the page prefers them: webgpu (when the
 * browser has an adapter), webgl, wasm. Each goes through client/backend.ts's chooseBackend, so
 * each passes the same known-answer self-test (client/backends/self-test.ts) as on Node, or is
 * passed over with the reason.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendCandidate, BackendName } from '../backends/types.js';

/** The browser's own tfjs backend, reported as what it is ('webgl' is not one of Node's names). */
const browserName = (name: string): BackendName => name as BackendName;

const webgpu: BackendCandidate = {
  name: 'webgpu',
  tfName: 'webgpu',
  async load() {
    const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
    if (gpu === undefined || (await gpu.requestAdapter()) === null) throw new Error('this browser has no WebGPU adapter');
    await import('@tensorflow/tfjs-backend-webgpu');
    if (!(await tf.setBackend('webgpu'))) throw new Error('tf.setBackend("webgpu") failed');
    await tf.ready();
    return { device: 'WebGPU (browser)' };
  },
};

const webgl: BackendCandidate = {
  name: browserName('webgl'),
  tfName: 'webgl',
  async load() {
    if (!(await tf.setBackend('webgl'))) throw new Error('no WebGL context');
    await tf.ready();
    return { device: `WebGL ${String(tf.env().getNumber('WEBGL_VERSION'))}` };
  },
};

/** @param wasmBase the URL folder of tfjs' .wasm binaries (served by the coordinator beside the page) */
export function wasm(wasmBase: string): BackendCandidate {
  return {
    name: 'wasm',
    tfName: 'wasm',
    async load() {
      const backend = await import('@tensorflow/tfjs-backend-wasm');
      backend.setWasmPaths(wasmBase);
      if (!(await tf.setBackend('wasm'))) throw new Error('tf.setBackend("wasm") failed (the .wasm binary did not load)');
      await tf.ready();
      const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
      const threads = backend.getThreadsCount();
      return { device: `wasm ${simd ? 'SIMD' : 'no SIMD'}, ${threads} thread${threads === 1 ? '' : 's'} (browser)` };
    },
  };
}

export function browserBackends(wasmBase: string): BackendCandidate[] {
  return [webgpu, webgl, wasm(wasmBase)];
}
