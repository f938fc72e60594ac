/** Helpers of the fused-op tests: seeded inputs and the error measure (float64 references are in each test). */
import * as tf from '@tensorflow/tfjs';
import { seededNormalValues } from '../../../client/lora/seeded-draws.js';

/** A seeded N(0, std^2) tensor and its values as float64. */
export function seeded(shape: number[], seed: number, std = 1): { t: tf.Tensor; v: Float64Array } {
  const values = seededNormalValues(shape.reduce((a, b) => a * b, 1), 0, std, seed);
  return { t: tf.tensor(values, shape), v: Float64Array.from(values) };
}

/** max |got - want| / max |want|: the relative error of a whole tensor. */
export function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) throw new Error(`length ${got.length} vs ${want.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return diff / scale;
}

/** The gradient of sum(f(x) * w) at x, read back: the op's backward with an upstream gradient w. */
export async function weightedGrads(f: (...xs: tf.Tensor[]) => tf.Tensor, xs: tf.Tensor[], w: tf.Tensor): Promise<Float32Array[]> {
  const gs = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(f(...a), w)))(xs);
  const out = await Promise.all(gs.map(async (g) => (await g.data()) as Float32Array));
  tf.dispose(gs);
  return out;
}
