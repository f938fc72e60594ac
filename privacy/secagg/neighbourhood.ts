/**
 * SecAgg+'s sparse communication graph (Bell et al. 2020, Sec. 3): instead of every pair of the n
 * clients, each client agrees masks and shares secrets with k = O(log n) neighbours only, so its
 * cost grows with log n. The graph is the Harary graph H(k, n) on a random ordering of the
 * clients, as Bell et al. propose: place the clients on a ring in the order of a seeded
 * permutation and join each to its k/2 nearest on either side. Every client then has exactly k
 * neighbours, and the graph is k-connected.
 *
 * The permutation is drawn from ChaCha20 keyed by SHA-256 of the round's graph seed, so every
 * party derives the same graph from the same seed and client list.
 */
import { FedloraError } from '../../shared/errors.js';
import { expandMask } from './mask-expansion.js';
import { deriveKey } from './key-agreement.js';

/**
 * The default degree: k = min(n - 1, 2 ceil(1.5 log2 n)) (even; n = 100: 20, n = 500: 28; the
 * complete graph up to n = 11). Bell et al. show k = O(log n) suffices for a constant fraction of
 * dropouts and corruptions; the constant is ours, tune it with `degree`.
 */
export function defaultDegree(clients: number): number {
  if (clients <= 1) return 0;
  return Math.min(clients - 1, 2 * Math.ceil(1.5 * Math.log2(clients)));
}

/** The default threshold t = floor(k / 2) + 1: a majority of each neighbourhood (see docs/secure-aggregation.md). */
export function defaultThreshold(degree: number): number {
  return Math.floor(degree / 2) + 1;
}

/**
 * Each client's neighbours.
 * @param clients the round's client ids, distinct
 * @param degree k: n - 1 (complete graph) or an even number in [2, n - 2]
 * @param seed the round's graph seed
 */
export function neighbourhood(clients: readonly string[], degree: number, seed: string): Map<string, Set<string>> {
  const n = clients.length;
  const out = new Map<string, Set<string>>(clients.map((c) => [c, new Set<string>()]));
  if (degree === n - 1) {
    for (const a of clients) for (const b of clients) if (a !== b) out.get(a)!.add(b);
    return out;
  }
  if (!(Number.isInteger(degree) && degree >= 2 && degree % 2 === 0 && degree <= n - 2)) {
    throw new FedloraError('FL_ERR_SECAGG_CONFIG', `secure aggregation: degree must be ${n - 1} (all clients) or an even integer in [2, ${n - 2}], got ${degree}`, { field: 'degree' });
  }
  const order = [...clients];
  const random = expandMask(deriveKey('graph', [seed]), 2 * n);
  for (let i = n - 1; i > 0; i--) {
    // 53 random bits per draw (exact in a double): the modulo bias is below n / 2^53.
    const r = ((random[2 * i]! >>> 11) * 2 ** 32 + random[2 * i + 1]!) % (i + 1);
    [order[i], order[r]] = [order[r]!, order[i]!];
  }
  for (let i = 0; i < n; i++) {
    for (let d = 1; d <= degree / 2; d++) {
      const a = order[i]!;
      const b = order[(i + d) % n]!;
      out.get(a)!.add(b);
      out.get(b)!.add(a);
    }
  }
  return out;
}
