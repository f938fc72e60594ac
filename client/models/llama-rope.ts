/**
 * Rotary position embeddings (Su et al., 2021, "RoFormer", eq. 34) in the Hugging Face Llama
 * convention: the head dimension is split in two halves (x1, x2), NOT interleaved pairs, and
 *   rope(x) = x * cos + rotate_half(x) * sin,  rotate_half(x) = concat(-x2, x1),
 * with angle(p, i) = p * theta^(-2i/d) for i < d/2, repeated over both halves.
 * Which is, per half: out1 = x1 c - x2 s, out2 = x2 c + x1 s.
 */
import * as tf from '@tensorflow/tfjs';
import type { Llama3RopeScaling } from './llama-config.js';

/**
 * The rotary inverse frequencies inv_freq[i] = theta^(-2i/d), i < d/2, in float64, rescaled
 * for Llama 3 when `scaling` is given (transformers' `_compute_llama3_parameters`; Meta's
 * `apply_scaling` in llama3's reference code): with wavelength w = 2 pi / inv_freq and
 * L = original_max_position_embeddings,
 *   w > L / low_freq_factor:   inv_freq / factor              (long wavelengths: interpolated)
 *   w < L / high_freq_factor:  inv_freq                       (short wavelengths: kept)
 *   otherwise:                 (1 - s) inv_freq / factor + s inv_freq,
 *                              s = (L / w - low_freq_factor) / (high_freq_factor - low_freq_factor).
 * Both scalings leave the attention scale at 1.
 */
export function ropeInverseFrequencies(headDim: number, theta: number, scaling?: Llama3RopeScaling): Float64Array {
  const half = headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = Math.pow(theta, (-2 * i) / headDim);
  if (scaling === undefined) return inv;
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: L } = scaling;
  const lowFreqWavelen = L / lowFreqFactor;
  const highFreqWavelen = L / highFreqFactor;
  for (let i = 0; i < half; i++) {
    const f = inv[i]!;
    const wavelen = (2 * Math.PI) / f;
    if (wavelen > lowFreqWavelen) {
      inv[i] = f / factor;
    } else if (wavelen >= highFreqWavelen) {
      const s = (L / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
      inv[i] = ((1 - s) * f) / factor + s * f;
    }
  }
  return inv;
}

/**
 * cos and sin of the rotary angles, [positions, headDim / 2] row-major, computed in float64 and
 * rounded once to float32 (transformers computes them in float32; the difference is below 1 ulp
 * of the angle for the positions we use).
 * @param headDim the head dimension d (even)
 * @param theta rope_theta
 * @param positions number of positions 0..positions-1
 * @param scaling Llama 3's frequency rescaling (see {@link ropeInverseFrequencies})
 */
export function ropeTables(headDim: number, theta: number, positions: number, scaling?: Llama3RopeScaling): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const inv = ropeInverseFrequencies(headDim, theta, scaling);
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * inv[i]!;
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
