/**
 * The matmul by a frozen matrix, with a hand-written gradient.
 *
 * docs/training.md, "Backends": on wasm, `x W^T` with a transposed
 * matmul, and the gradient tf derives for it, cost 8x more than `x Wt` with `Wt = W^T` stored once
 * and a custom gradient `dx = dy W` that uses the other stored layout. The frozen matrix gets no
 * gradient (it is not an input of the custom op), so both layouts are constants of the op.
 */
import * as tf from '@tensorflow/tfjs';

/** The two layouts of one frozen matrix M [out, in]: `forward` = M^T [in, out], `backward` = M [out, in]. */
export interface FrozenPair {
  /** [in, out]: the forward multiplies x [N, in] by this. */
  readonly forward: tf.Tensor2D;
  /** [out, in]: the backward multiplies dy [N, out] by this. */
  readonly backward: tf.Tensor2D;
}

/**
 * A FrozenPair that makes `forward` (M^T) on first use and keeps it: backends that use transpose
 * flags (matmul-policy.ts) never ask for it, so they hold one copy of each frozen matrix, not two.
 */
export class LazyFrozenPair implements FrozenPair {
  private transposed: tf.Tensor2D | null;

  /**
   * @param backward M [out, in]; the pair owns it
   * @param forward M^T when the caller already has it (the pair owns it then too)
   */
  constructor(readonly backward: tf.Tensor2D, forward: tf.Tensor2D | null = null) {
    this.transposed = forward;
  }

  get forward(): tf.Tensor2D {
    // kept: it may first be made inside a tidy scope (a custom op's forward pass)
    this.transposed ??= tf.keep(tf.tidy(() => tf.transpose(this.backward) as tf.Tensor2D));
    return this.transposed;
  }

  /** Frees both layouts. */
  dispose(): void {
    tf.dispose(this.transposed === null ? [this.backward] : [this.backward, this.transposed]);
    this.transposed = null;
  }
}

/**
 * Makes `x -> x @ pair().forward` with gradient `dy -> dy @ pair().backward`.
 * The pair is read at each call, so the matrix may be replaced (e.g. by a FLoRA merge) without
 * remaking the op.
 * @param pair returns the current stored layouts; they are owned by the caller
 */
export function frozenMatmul(pair: () => FrozenPair): (x: tf.Tensor2D) => tf.Tensor2D {
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const x = args[0] as tf.Tensor2D;
    const { forward, backward } = pair();
    return {
      value: tf.matMul(x, forward),
      gradFunc: (dy: tf.Tensor) => tf.matMul(dy as tf.Tensor2D, backward),
    };
  });
  return (x) => op(x) as tf.Tensor2D;
}

/** A frozen matrix given row-major as M [rows, cols]; the caller disposes the pair. */
export function makeFrozenPair(values: Float32Array, rows: number, cols: number): LazyFrozenPair {
  return new LazyFrozenPair(tf.tensor2d(values, [rows, cols], 'float32'));
}

/** A frozen matrix M [rows, cols] given row-major as its transpose M^T [cols, rows]. */
export function makeFrozenPairFromTransposed(valuesT: Float32Array, rows: number, cols: number): LazyFrozenPair {
  const forward = tf.tensor2d(valuesT, [cols, rows], 'float32');
  return new LazyFrozenPair(tf.tidy(() => tf.transpose(forward) as tf.Tensor2D), forward);
}

/**
 * `x @ pair().forward` as frozenMatmul, with a second input `probe` (a scalar variable the caller
 * differentiates against) so that tfjs runs this op's backward pass even when nothing trainable
 * lies upstream of x, and a callback that receives (x, dy) there: the gradient of the loss w.r.t.
 * the frozen matrix M [out, in] is dy^T x (used for Fed-SB's LoRA-SB initialisation).
 * The probe gets a zero gradient.
 */
export function probedFrozenMatmul(pair: () => FrozenPair, onGrad: (x: tf.Tensor2D, dy: tf.Tensor2D) => void): (x: tf.Tensor2D, probe: tf.Variable) => tf.Tensor2D {
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const x = args[0] as tf.Tensor2D;
    const probe = args[1] as tf.Tensor;
    const save = args[2] as tf.GradSaveFunc;
    save([x]);
    const { forward, backward } = pair();
    return {
      value: tf.matMul(x, forward),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        onGrad(saved[0] as tf.Tensor2D, dy as tf.Tensor2D);
        return [tf.matMul(dy as tf.Tensor2D, backward), tf.zerosLike(probe)];
      },
    };
  });
  return (x, probe) => op(x, probe) as tf.Tensor2D;
}
