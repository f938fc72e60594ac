/**
 * Seeded client selection: the same job seed, round, attempt and set of connected clients give
 * the same selection on any machine (a partial Fisher-Yates shuffle driven by aggregation's
 * specified xoshiro128** generator, over the client ids in sorted order).
 */
import { SeededRandom } from '../../aggregation/seeded-random.js';

/**
 * Picks `count` of `clientIds` (all of them when there are fewer).
 * @param seed the job seed
 */
export function selectClients(clientIds: readonly string[], count: number, seed: number, round: number, attempt: number): string[] {
  const pool = [...new Set(clientIds)].sort();
  const n = Math.min(count, pool.length);
  const rng = SeededRandom.fromSeed('fedlora/selection/v1', String(seed), String(round), String(attempt));
  for (let i = 0; i < n; i++) {
    // Uniform j in [i, pool.length) by rejection, so no index is favoured by the modulo.
    const span = pool.length - i;
    const limit = Math.floor(0x1_0000_0000 / span) * span;
    let x = rng.nextUint32();
    while (x >= limit) x = rng.nextUint32();
    const j = i + (x % span);
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, n);
}

/** A client's local seed for one round, a uint32 derived from the job seed. */
export function clientSeed(seed: number, round: number, clientId: string): number {
  return SeededRandom.fromSeed('fedlora/client-seed/v1', String(seed), String(round), clientId).nextUint32();
}
