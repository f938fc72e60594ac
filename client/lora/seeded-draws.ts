/**
 * The numbers tfjs' seeded `tf.randomUniform` and `tf.randomNormal` draw, computed here in plain
 * JavaScript so that no tensor has to be read back from the device to get them (WebGPU in Node
 * has no synchronous read at all: `dataSync` throws there).
 *
 * tfjs-core draws both in JavaScript on every backend, from seedrandom's "alea" generator seeded
 * with the seed's decimal string: uniform values as `min + (max - min) * u`, normal values by
 * Marsaglia's polar method in pairs. The same algorithm on the same generator gives the same
 * float32 values, which test/client/lora/seeded-draws.test.ts checks against tfjs itself.
 */
import seedrandom from 'seedrandom';
import { FedloraError } from '../../shared/errors.js';

function generator(seed: number, fn: string, zeroAllowed: boolean): () => number {
  // tfjs' randomNormal treats a seed of 0 as "draw from Math.random" (randomUniform does not):
  // refuse it here, since a caller of this file always wants the same values on every client.
  if (!Number.isFinite(seed) || (seed === 0 && !zeroAllowed)) {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `${fn}: seed must be a finite${zeroAllowed ? '' : ' non-zero'} number, got ${seed}`);
  }
  return seedrandom.alea(seed.toString());
}

/** `count` values from U(min, max), as `tf.randomUniform([count], min, max, 'float32', seed)` draws them. */
export function seededUniformValues(count: number, min: number, max: number, seed: number): Float32Array {
  const random = generator(seed, 'seededUniformValues', true);
  const out = new Float32Array(count);
  const range = max - min;
  for (let i = 0; i < count; i++) out[i] = min + range * random();
  return out;
}

/** `count` values from N(mean, std^2), as `tf.randomNormal([count], mean, std, 'float32', seed)` draws them. */
export function seededNormalValues(count: number, mean: number, std: number, seed: number): Float32Array {
  const random = generator(seed, 'seededNormalValues', false);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    let v1: number, v2: number, s: number;
    do {
      v1 = 2 * random() - 1;
      v2 = 2 * random() - 1;
      s = v1 * v1 + v2 * v2;
    } while (s >= 1 || s === 0);
    const mul = Math.sqrt((-2 * Math.log(s)) / s);
    out[i] = mean + std * v1 * mul;
    if (i + 1 < count) out[i + 1] = mean + std * v2 * mul;
  }
  return out;
}
