/**
 * Matmuls whose backward passes use only non-transposed matmuls.
 *
 * Why: tfjs-backend-wasm 4.22 sends a matmul to XNNPACK only when it is one 2-D product without
 * transposes; a transposed or batched one falls to a plain C loop, ~10x slower (measured on the
 * 2-core dev machine: [2048, 256] @ [256, 688] 107 ms, the same with transposeB 1,225 ms;
 * a batched [64, 256, 32] @ [64, 32, 128] always takes the loop). tfjs' own matmul
 * gradient is dA = dY B^T, dB = A^T dY with transposed matmuls, so pre-training (every weight
 * trained) and attention (whose backward every LoRA step runs) spend most of their time there.
 * An explicit transpose is a cheap copy; a plain matmul after it takes the fast path.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * a @ b whose gradients, dA = dY B^T and dB = A^T dY, use explicit transposes (`perm` swaps the
 * last two axes) and non-transposed matmuls.
 */
function explicitTransposeMatmul(perm: number[]) {
  return tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const a = args[0] as tf.Tensor;
    const b = args[1] as tf.Tensor;
    const save = args[2] as tf.GradSaveFunc;
    save([a, b]);
    return {
      value: tf.matMul(a, b),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sa, sb] = saved as [tf.Tensor, tf.Tensor];
        return [tf.matMul(dy, tf.transpose(sb, perm)), tf.matMul(tf.transpose(sa, perm), dy)];
      },
    };
  });
}

/** a [m, k] @ b [k, n], gradients dA = dY (B^T) and dB = (A^T) dY with explicit transposes. */
export const matmulPlainGrad = explicitTransposeMatmul([1, 0]) as (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D;

/**
 * Batched a [N, m, k] @ b [N, k, n] -> [N, m, n], with gradients dA = dY B^T and dB = A^T dY
 * from explicit transposes and non-transposed batched matmuls. (Splitting the batch into 2-D
 * matmuls for XNNPACK costs more in slicing than it saves on wasm: measured, tf.split/unstack of
 * [32, 256, 32] ~60 ms against ~160 ms for the whole batched product on the loaded 2-core machine.)
 */
export const batchedMatmul = explicitTransposeMatmul([0, 2, 1]) as (a: tf.Tensor3D, b: tf.Tensor3D) => tf.Tensor3D;
