import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { isFedloraError } from '../../shared/errors.js';
import { BACKEND_NAMES, chooseBackend, parseBackendName, shutdownBackend } from '../../client/backend.js';
import { cpuBackend } from '../../client/backends/cpu.js';
import { relativeError, runSelfTest, SELF_TEST_TOLERANCE, selfTestReference } from '../../client/backends/self-test.js';
import type { BackendCandidate } from '../../client/backends/types.js';

afterAll(async () => {
  await shutdownBackend();
});

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    return isFedloraError(e) ? e.code : String(e);
  }
}

/**
 * A real tfjs backend that is wrong the way Dawn on OpenGL with the NVIDIA driver was (docs/training.md, "Backends"):
 * the cpu backend's kernels, except that every matmul returns zeros.
 */
function registerZeroMatmulBackend(name: string): BackendCandidate {
  tf.registerBackend(name, tf.findBackendFactory('cpu')!);
  for (const k of tf.getKernelsForBackend('cpu')) {
    if (k.kernelName === 'BatchMatMul') continue;
    tf.registerKernel({ ...k, backendName: name });
  }
  const real = tf.getKernel('BatchMatMul', 'cpu')!;
  tf.registerKernel({
    kernelName: 'BatchMatMul',
    backendName: name,
    kernelFunc: (args) => {
      const out = real.kernelFunc(args) as tf.TensorInfo;
      const store = (args.backend as unknown as { data: { get(id: object): { values: Float32Array } } }).data;
      store.get(out.dataId).values.fill(0);
      return out;
    },
  });
  return {
    name: 'webgpu', // stands in for a GPU backend in the chooser's order
    tfName: name,
    async load() {
      await tf.setBackend(name);
      return { device: 'a device whose matmuls return zeros' };
    },
  };
}

describe('self-test comparison', () => {
  it('is zero on the reference itself and fails a wrong or an all-zero matrix', () => {
    const { y } = selfTestReference();
    expect(relativeError(y, y)).toBe(0);
    const wrong = Float64Array.from(y);
    wrong[17] = wrong[17]! + 0.01;
    expect(relativeError(wrong, y)).toBeGreaterThan(SELF_TEST_TOLERANCE);
    expect(relativeError(new Float64Array(y.length), y)).toBeGreaterThan(SELF_TEST_TOLERANCE);
    expect(relativeError([Number.NaN, ...y.slice(1)], y)).toBe(Infinity);
    expect(relativeError(y.slice(1), y)).toBe(Infinity);
  });

  it('fails when the device reported asynchronous errors', async () => {
    await tf.setBackend('cpu');
    const r = await runSelfTest(() => ['validation error in a shader']);
    expect(r.ok).toBe(false);
    expect(r.reason).toMatch(/validation error in a shader/);
  });
});

describe('chooseBackend', () => {
  for (const name of ['cpu', 'wasm'] as const) {
    it(`${name}: loads and passes the self-test when forced`, async () => {
      const info = await chooseBackend({ backend: name });
      expect(info.name).toBe(name);
      expect(tf.getBackend()).toBe(name);
      expect(info.selfTest.ok).toBe(true);
      // float32 vs float64 on values of order 1: within a few ulps
      expect(info.selfTest.maxError).toBeLessThan(1e-5);
      expect(info.device.length).toBeGreaterThan(0);
    });
  }

  it('takes the first usable backend in the order tensorflow, webgpu, wasm, cpu', async () => {
    const lines: string[] = [];
    const info = await chooseBackend({ log: (l) => lines.push(l) });
    const chosenAt = BACKEND_NAMES.indexOf(info.name);
    // every backend before the chosen one was tried and passed over with a reason
    expect(info.skipped.map((s) => s.name)).toEqual(BACKEND_NAMES.slice(0, chosenAt));
    for (const s of info.skipped) expect(s.reason.length).toBeGreaterThan(0);
    expect(lines).toHaveLength(chosenAt + 1);
    expect(info.selfTest.ok).toBe(true);
  });

  it('forcing tensorflow works only where tfjs-node is installed, else fails loudly', async () => {
    const resolve = createRequire(import.meta.url).resolve;
    const installed = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'].some((p) => {
      try { resolve(p); return true; } catch { return false; }
    });
    expect(await codeOf(chooseBackend({ backend: 'tensorflow' }))).toBe(installed ? 'resolved' : 'FL_ERR_BACKEND');
  });

  it('passes over a backend that computes wrong results, and refuses it when forced', async () => {
    const broken = registerZeroMatmulBackend('zero-matmul');
    const lines: string[] = [];
    const info = await chooseBackend({ candidates: [broken, cpuBackend], log: (l) => lines.push(l) });
    expect(info.name).toBe('cpu');
    expect(info.skipped[0]?.reason).toMatch(/failed its self-test: wrong results.*matmul off by/);
    expect(lines[0]).toMatch(/webgpu not used: failed its self-test/);
    let err: unknown;
    try { await chooseBackend({ backend: 'webgpu', candidates: [broken, cpuBackend] }); } catch (e) { err = e; }
    expect(isFedloraError(err, 'FL_ERR_BACKEND')).toBe(true);
    expect(String(err)).toMatch(/'webgpu' was requested but is not usable: failed its self-test/);
  });

  it('checks --backend values', () => {
    expect(parseBackendName('wasm')).toBe('wasm');
    expect(() => parseBackendName('cuda')).toThrow(/FL_ERR_INVALID_ARGUMENT.*one of tensorflow, webgpu, wasm, cpu, got 'cuda'/);
  });
});
