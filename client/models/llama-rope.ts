/**
 * Rotary position embeddings (Su et al., 2021, "RoFormer", eq. 34) in the Hugging Face Llama
 * convention: the head dimension is split in two halves (x1, x2), NOT interleaved pairs, and
 *   rope(x) = x * cos + rotate_half(x) * sin,  rotate_half(x) = concat(-x2, x1),
 * with angle(p, i) = p * theta^(-2i/d) for i < d/2, repeated over both halves.
 * Which is, per half: out1 = x1 c - x2 s, out2 = x2 c + x1 s.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * cos and sin of the rotary angles, [positions, headDim / 2] row-major, computed in float64 and
 * rounded once to float32 (transformers computes them in float32; the difference is below 1 ulp
 * of the angle for the positions we use).
 * @param headDim the head dimension d (even)
 * @param theta rope_theta
 * @param positions number of positions 0..positions-1
 */
export function ropeTables(headDim: number, theta: number, positions: number): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * Math.pow(theta, (-2 * i) / headDim);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/**
 * Applies the rotation to x [..., T, headDim] with cos/sin [T, headDim / 2] (broadcast over the
 * leading axes).
 */
export function applyRope(x: tf.Tensor, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor {
  return tf.tidy(() => {
    const d = x.shape[x.rank - 1]!;
    const [x1, x2] = tf.split(x, [d / 2, d / 2], x.rank - 1);
    const out1 = tf.sub(tf.mul(x1!, cos), tf.mul(x2!, sin));
    const out2 = tf.add(tf.mul(x2!, cos), tf.mul(x1!, sin));
    return tf.concat([out1, out2], x.rank - 1);
  });
}
