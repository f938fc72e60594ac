/**
 * The rotary embedding of queries and keys (client/models/llama-rope.ts has the convention: halves,
 * not interleaved pairs) as one fused op (issue 13). On x [..., T, d] with cos, sin [T, d/2]:
 *
 *   out1 = x1 c - x2 s,   out2 = x2 c + x1 s
 *
 * and, the rotation being orthogonal, its gradient is the rotation by -theta:
 *
 *   dx1 = dy1 c + dy2 s,  dx2 = dy2 c - dy1 s
 *
 * The plain composition is a split, four products, an add, a sub and a concat forward (and their
 * gradients backward) per tensor, 60 tensors per SmolLM step. On webgpu both directions are the
 * same one-thread-per-element program with the sign of sin as a uniform.
 */
import * as tf from '@tensorflow/tfjs';
import { FedloraError } from '../../shared/errors.js';
import { applyRope } from '../models/llama-rope.js';
import { customOp, f32, fusedOpsMode, i32, onWebgpu, runWgsl } from './webgpu-program.js';

const WG = 128;

function rotateGpu(x: tf.Tensor2D, cos: tf.Tensor2D, sin: tf.Tensor2D, sign: 1 | -1): tf.Tensor2D {
  const [rows, d] = x.shape;
  const size = rows * d;
  return runWgsl({
    name: 'rope', inputNames: ['X', 'C', 'S'], inputs: [x, cos, sin], outputShape: [rows, d], workgroupSize: WG, workgroups: Math.ceil(size / WG),
    uniforms: 'seq : i32, dim : i32, sign : f32,', uniformData: [i32(cos.shape[0]), i32(d), f32(sign)],
    code: `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let hd = uniforms.dim / 2;
          let j = index % uniforms.dim;
          let t = (index / uniforms.dim) % uniforms.seq;
          let v = X[index];
          if (j < hd) {
            let k = t * hd + j;
            result[index] = v * C[k] - uniforms.sign * X[index + hd] * S[k];
          } else {
            let k = t * hd + j - hd;
            result[index] = v * C[k] + uniforms.sign * X[index - hd] * S[k];
          }
        }
      }`,
  }) as tf.Tensor2D;
}

/** The same rotation with tfjs ops; sign -1 rotates by -theta. */
function rotateOps(x: tf.Tensor, cos: tf.Tensor2D, sin: tf.Tensor2D, sign: 1 | -1): tf.Tensor {
  return tf.tidy(() => applyRope(x, cos, sign === 1 ? sin : tf.neg(sin)));
}

function rotate(x: tf.Tensor, cos: tf.Tensor2D, sin: tf.Tensor2D, sign: 1 | -1): tf.Tensor {
  if (!onWebgpu()) return rotateOps(x, cos, sin, sign);
  const d = x.shape[x.rank - 1]!;
  return tf.tidy(() => tf.reshape(rotateGpu(tf.reshape(x, [-1, d]), cos, sin, sign), x.shape));
}

/**
 * The fused op: x [..., T, d] rotated with cos, sin [T, d/2] (constants: only x gets a gradient).
 */
export function fusedRope(x: tf.Tensor, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor {
  const d = x.shape[x.rank - 1]!;
  const T = x.shape[x.rank - 2];
  if (x.rank < 2 || d % 2 !== 0 || cos.shape[0] !== T || cos.shape[1] !== d / 2 || sin.shape[0] !== T || sin.shape[1] !== d / 2) {
    throw new FedloraError('FL_ERR_SHAPE_MISMATCH',
      `rope: x must be [..., T, d] (d even) and cos, sin [T, d/2], got [${x.shape.join(', ')}], [${cos.shape.join(', ')}], [${sin.shape.join(', ')}]`);
  }
  const op = customOp(([input], save) => {
    save([cos, sin]);
    return {
      value: rotate(input!, cos, sin, 1),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => rotate(dy, saved[0] as tf.Tensor2D, saved[1] as tf.Tensor2D, -1),
    };
  });
  return op(x);
}

/** What the model calls: the fused op when {@link fusedOpsMode} is not `off`, else the plain composition. */
export function rope(x: tf.Tensor, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor {
  return fusedOpsMode() === 'off' ? applyRope(x, cos, sin) : fusedRope(x, cos, sin);
}
