/**
 * Records (x, dy) of every tapped matmul of a backward pass (see lora/gradient-tap.ts), for ghost
 * clipping. The recorded tensors are kept past the backward pass and freed by `dispose()`.
 */
import * as tf from '@tensorflow/tfjs';
import type { GradientTap } from '../lora/gradient-tap.js';

export interface TapRecord {
  readonly variable: tf.Variable;
  /** [examples * rowsPerExample, p] */
  readonly x: tf.Tensor2D;
  /** [examples * rowsPerExample, q] */
  readonly dy: tf.Tensor2D;
  readonly examples: number;
}

export class GradientRecorder implements GradientTap {
  readonly records: TapRecord[] = [];

  record(variable: tf.Variable, x: tf.Tensor2D, dy: tf.Tensor2D, examples: number): void {
    this.records.push({ variable, x: tf.keep(tf.clone(x)), dy: tf.keep(tf.clone(dy)), examples });
  }

  dispose(): void {
    for (const r of this.records) tf.dispose([r.x, r.dy]);
    this.records.length = 0;
  }
}
