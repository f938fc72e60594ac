/** Deterministic train/test splits. */
import { FedloraError } from '../../shared/errors.js';
import { SeededRandom } from './seeded-random.js';

export interface Split {
  readonly train: Int32Array;
  readonly test: Int32Array;
}

/**
 * Shuffles 0..n-1 with the seed and puts the first round(n * testFraction) in `test`; both parts
 * are returned sorted, so the split does not depend on anything but (n, testFraction, seed).
 * @param testFraction in [0, 1)
 */
export function trainTestSplit(n: number, testFraction: number, seed: number | string): Split {
  if (!Number.isInteger(n) || n < 0) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `split: row count must be a non-negative integer, got ${n}`);
  if (!(testFraction >= 0 && testFraction < 1)) {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `split: test fraction must be in [0, 1), got ${testFraction}`);
  }
  const order = new SeededRandom(seed, 'train-test-split').shuffle(Int32Array.from({ length: n }, (_, i) => i));
  const nTest = Math.round(n * testFraction);
  return { test: order.slice(0, nTest).sort(), train: order.slice(nTest).sort() };
}
