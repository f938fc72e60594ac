/**
 * The known-answer self-test every backend passes before fedlora trains on it (docs/training.md, "Backends": Dawn
 * on OpenGL with the NVIDIA driver returned zeros for every op, silently). It runs a small matmul
 * and the gradients of a mean squared error through it on the active backend and compares them
 * with the same quantities computed in float64 in plain JavaScript.
 */
import * as tf from '@tensorflow/tfjs';
import type { SelfTestResult } from './types.js';

/**
 * Tolerance on the relative error. The values are float32 sums of <= 17 products of numbers in
 * [-1, 1]: a correct backend is within ~1e-6 (1e-4 with TF32-style reduced-precision matmuls);
 * a wrong kernel is off by the order of the values themselves.
 */
export const SELF_TEST_TOLERANCE = 1e-3;

const N = 13;
const K = 17;
const M = 11;

/** Deterministic values in [-1, 1]; the same on every machine. */
function knownValues(count: number, phase: number): Float32Array {
  return Float32Array.from({ length: count }, (_, i) => Math.sin(0.37 * i + phase));
}

/** float64 a [r, k] @ b [k, c], with optional transposes of the stored matrices. */
function matmul(a: ArrayLike<number>, b: ArrayLike<number>, r: number, k: number, c: number, transA = false, transB = false): Float64Array {
  const out = new Float64Array(r * c);
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < c; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += (transA ? a[t * r + i]! : a[i * k + t]!) * (transB ? b[j * k + t]! : b[t * c + j]!);
      out[i * c + j] = s;
    }
  }
  return out;
}

/**
 * The error of `actual` against `expected`: max |a - e| / max(1, max |e|); Infinity when a value
 * is not finite or the lengths differ.
 */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Infinity;
  let scale = 1;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    if (!Number.isFinite(a)) return Infinity;
    worst = Math.max(worst, Math.abs(a - expected[i]!) / scale);
  }
  return worst;
}

/** The float64 answers: y = x W, L = mean((y - T)^2), dL/dW = x^T D, dL/dx = D W^T with D = 2 (y - T) / (N M). */
export function selfTestReference(): { y: Float64Array; loss: number; dW: Float64Array; dx: Float64Array } {
  const x = knownValues(N * K, 0.1);
  const w = knownValues(K * M, 1.3);
  const t = knownValues(N * M, 2.7);
  const y = matmul(x, w, N, K, M);
  const d = y.map((v, i) => (2 * (v - t[i]!)) / (N * M));
  const loss = y.reduce((s, v, i) => s + (v - t[i]!) ** 2, 0) / (N * M);
  return { y, loss, dW: matmul(x, d, K, N, M, true), dx: matmul(d, w, N, M, K, false, true) };
}

/**
 * Runs the self-test on the active tfjs backend.
 * @param asyncErrors errors the device reported meanwhile (WebGPU), which fail the test too
 */
export async function runSelfTest(asyncErrors: () => readonly string[] = () => []): Promise<SelfTestResult> {
  const ref = selfTestReference();
  try {
    const x = tf.tensor2d(knownValues(N * K, 0.1), [N, K]);
    const w = tf.tensor2d(knownValues(K * M, 1.3), [K, M]);
    const t = tf.tensor2d(knownValues(N * M, 2.7), [N, M]);
    const y = tf.matMul(x, w);
    const f = (a: tf.Tensor, b: tf.Tensor): tf.Scalar => tf.mean(tf.square(tf.sub(tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D), t)));
    const { value, grads } = tf.valueAndGrads(f)([x, w]);
    const [dx, dW] = grads as [tf.Tensor, tf.Tensor];
    const [yv, lv, dxv, dWv] = await Promise.all([y.data(), value.data(), dx.data(), dW.data()]);
    tf.dispose([x, w, t, y, value, dx, dW]);
    const errors = {
      matmul: relativeError(yv, ref.y),
      loss: relativeError(lv, [ref.loss]),
      'gradient x': relativeError(dxv, ref.dx),
      'gradient W': relativeError(dWv, ref.dW),
    };
    const maxError = Math.max(...Object.values(errors));
    const reported = asyncErrors();
    if (reported.length > 0) return { ok: false, maxError, reason: `the device reported errors: ${reported.join('; ')}` };
    if (!(maxError <= SELF_TEST_TOLERANCE)) {
      const bad = Object.entries(errors).filter(([, e]) => !(e <= SELF_TEST_TOLERANCE)).map(([k, e]) => `${k} off by ${e}`);
      return { ok: false, maxError, reason: `wrong results (tolerance ${SELF_TEST_TOLERANCE}): ${bad.join(', ')}` };
    }
    return { ok: true, maxError };
  } catch (e) {
    return { ok: false, maxError: Infinity, reason: `the self-test threw: ${e instanceof Error ? e.message : String(e)}` };
  }
}
