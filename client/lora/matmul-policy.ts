/**
 * Which matmul formulation is fastest depends on the backend (bench/training.bench.ts, measured
 * 2026-11-28):
 *  - wasm: matmuls with tfjs' transpose flags take a slow path (10x to 40x), so frozen weights are
 *    stored in both layouts with a custom gradient, and the trainable factors' gradients transpose
 *    the small operand explicitly: 5x faster than the naive formulation on the LoRA step.
 *  - webgpu (H200): transposes are free inside the matmul shaders and every extra op costs a
 *    dispatch, so the plain formulation with transpose flags and tf's own gradients is faster
 *    (the explicit one measured 29 vs 24.5 ms for one layer, 74 vs 44 ms for four).
 * `cpu` follows wasm (it keeps the custom gradients exercised by the tests, which run on cpu);
 * every other backend (webgpu, tensorflow) uses transpose flags.
 */
import * as tf from '@tensorflow/tfjs';

export type MatmulPolicy = 'auto' | 'explicit' | 'flags';

let policy: MatmulPolicy = 'auto';

/**
 * Overrides the choice (for tests and benchmarks): `explicit` = stored layouts and custom
 * gradients, `flags` = tf.matMul with transpose flags and tf's gradients, `auto` = by backend.
 * @returns the previous policy
 */
export function setMatmulPolicy(next: MatmulPolicy): MatmulPolicy {
  const previous = policy;
  policy = next;
  return previous;
}

/** True when matmuls should use stored layouts and explicit transposes (wasm, cpu, or forced). */
export function avoidTransposeFlags(): boolean {
  if (policy !== 'auto') return policy === 'explicit';
  const b = tf.getBackend();
  return b === 'wasm' || b === 'cpu';
}
