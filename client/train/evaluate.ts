/** Evaluation: loss and accuracy for a classifier, loss and perplexity for a causal LM. */
import * as tf from '@tensorflow/tfjs';
import { FedloraError } from '../../shared/errors.js';
import type { ExampleSource } from '../data/batches.js';
import { disposeBatch } from '../data/batches.js';
import type { TrainableModel } from '../lora/lora-model.js';
import { softmaxCrossEntropyPerExample, tokenCrossEntropy } from './losses.js';

export interface Evaluation {
  /** Examples evaluated. */
  readonly examples: number;
  /** Mean cross-entropy per example (classification) or per counted token (causal LM), in nats. */
  readonly loss: number;
  /** Fraction of examples whose argmax logit is the label (classification only). */
  readonly accuracy?: number;
  /** exp(loss) over counted tokens (causal LM only). */
  readonly perplexity?: number;
  /** Counted target tokens (causal LM only). */
  readonly tokens?: number;
}

/**
 * Evaluates on every example of the source, in order, in batches.
 * @param batchSize @default 256 for a classifier, 8 sequences for a causal LM (its logits are
 *   [batch, T, vocab]: 8 x 128 x 49,152 floats is already 200 MB)
 */
export async function evaluate(model: TrainableModel, source: ExampleSource, batchSize = model.task === 'classification' ? 256 : 8): Promise<Evaluation> {
  if (source.size === 0) throw new FedloraError('FL_ERR_TRAINING', 'cannot evaluate on an empty data set');
  let lossSum = 0;
  let count = 0;
  let correct = 0;
  for (let start = 0; start < source.size; start += batchSize) {
    const idx = Array.from({ length: Math.min(batchSize, source.size - start) }, (_, i) => start + i);
    const batch = source.batch(idx);
    try {
      const parts = tf.tidy(() => {
        const logits = model.forward(batch.inputs);
        if (model.task === 'classification') {
          const hits = tf.sum(tf.cast(tf.equal(tf.argMax(logits, -1), tf.cast(batch.targets, 'int32')), 'float32'));
          return [tf.sum(softmaxCrossEntropyPerExample(logits, batch.targets)), tf.scalar(idx.length), hits];
        }
        const ce = tokenCrossEntropy(logits, batch.targets, batch.mask);
        return [ce.sum, ce.count, tf.scalar(0)];
      });
      const [s, c, h] = await Promise.all(parts.map((t) => t.data()));
      tf.dispose(parts);
      lossSum += s![0]!;
      count += c![0]!;
      correct += h![0]!;
    } finally {
      disposeBatch(batch);
    }
  }
  const loss = lossSum / Math.max(count, 1);
  if (model.task === 'classification') return { examples: source.size, loss, accuracy: correct / source.size };
  return { examples: source.size, loss, perplexity: Math.exp(loss), tokens: count };
}
