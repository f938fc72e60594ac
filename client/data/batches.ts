/**
 * Example sources: what the trainer draws batches from. A source holds its examples as typed
 * arrays and builds the tensors of one batch on demand; the caller owns (disposes) them.
 */
import * as tf from '@tensorflow/tfjs';
import { FedloraError } from '../../shared/errors.js';
import type { Batch } from '../lora/lora-model.js';
import type { ClassificationTable } from './table.js';

export interface ExampleSource {
  /** Number of examples. */
  readonly size: number;
  /** The tensors of the examples at `indices`, in that order. */
  batch(indices: ArrayLike<number>): Batch;
  /**
   * The examples as plain typed arrays, from which `sourceFromSpec` rebuilds an equal source in
   * another thread (data-parallel training, client/train/train-worker-pool.ts). Absent for a
   * source that cannot be rebuilt that way.
   */
  readonly spec?: SourceSpec;
}

/** What a source is made of: enough to rebuild it in a worker thread (structured-clonable). */
export type SourceSpec =
  | { readonly kind: 'table'; readonly features: Float32Array; readonly labels: Int32Array; readonly featureCount: number }
  | { readonly kind: 'tokens'; readonly sequences: readonly Int32Array[]; readonly seqLen: number; readonly padId: number };

/** The source a spec describes (the same examples, the same batches). */
export function sourceFromSpec(spec: SourceSpec): ExampleSource {
  if (spec.kind === 'tokens') return tokenSource(spec.sequences, spec.seqLen, spec.padId);
  return featureSource(spec.features, spec.labels, spec.featureCount);
}

/** Features [N, d] float32 and labels [N] int32 from a table. */
export function tableSource(table: ClassificationTable): ExampleSource {
  return featureSource(table.features, table.labels, table.featureNames.length);
}

function featureSource(features: Float32Array, labels: Int32Array, d: number): ExampleSource {
  return {
    size: labels.length,
    spec: { kind: 'table', features, labels, featureCount: d },
    batch(indices) {
      const n = indices.length;
      const x = new Float32Array(n * d);
      const y = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const r = indices[i]!;
        x.set(features.subarray(r * d, (r + 1) * d), i * d);
        y[i] = labels[r]!;
      }
      return { inputs: tf.tensor2d(x, [n, d]), targets: tf.tensor1d(y, 'int32') };
    },
  };
}

/**
 * Next-token examples from token sequences: for a sequence t_0..t_L, inputs t_0..t_{T-1} and
 * targets t_1..t_T, cut or padded to T = seqLen, with a mask of the real targets.
 * @param sequences token ids, each of length >= 2
 * @param seqLen T, the number of predicted positions per example
 * @param padId the id padded inputs carry (masked out of the loss)
 */
export function tokenSource(sequences: readonly Int32Array[], seqLen: number, padId: number): ExampleSource {
  if (!Number.isInteger(seqLen) || seqLen < 1) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `seqLen must be a positive integer, got ${seqLen}`);
  sequences.forEach((s, i) => {
    if (s.length < 2) throw new FedloraError('FL_ERR_DATA', `token sequence ${i} has ${s.length} tokens; next-token training needs at least 2`);
  });
  return {
    size: sequences.length,
    spec: { kind: 'tokens', sequences, seqLen, padId },
    batch(indices) {
      const n = indices.length;
      const inputs = new Int32Array(n * seqLen).fill(padId);
      const targets = new Int32Array(n * seqLen).fill(padId);
      const mask = new Float32Array(n * seqLen);
      for (let i = 0; i < n; i++) {
        const s = sequences[indices[i]!]!;
        const len = Math.min(seqLen, s.length - 1);
        inputs.set(s.subarray(0, len), i * seqLen);
        targets.set(s.subarray(1, len + 1), i * seqLen);
        mask.fill(1, i * seqLen, i * seqLen + len);
      }
      return { inputs: tf.tensor2d(inputs, [n, seqLen], 'int32'), targets: tf.tensor2d(targets, [n, seqLen], 'int32'), mask: tf.tensor2d(mask, [n, seqLen]) };
    },
  };
}

/** Disposes the tensors of a batch. */
export function disposeBatch(batch: Batch): void {
  tf.dispose([batch.inputs, batch.targets, ...(batch.mask === undefined ? [] : [batch.mask])]);
}
