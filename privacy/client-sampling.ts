/**
 * User-level client sampling for DP-FedAvg and distributed DP, and the sampling rate the ledger
 * books for it (docs/privacy.md, "The sampling model").
 *
 * Amplification by subsampling (the RDP of the Poisson-sampled Gaussian mechanism, privacy/rdp.ts)
 * holds only when (a) each client of the population is included independently with probability q,
 * (b) the draw is secret: nobody who sees the output can recompute it, and (c) the population is
 * the one the draw really runs over. So: the coordinator draws from the clients connected at the
 * start of the round (the population), each independently with q = min(1, offered / connected)
 * from the node:crypto CSPRNG, and the ledger books that q. When every connected client would be
 * offered anyway (connected <= offered) the draw is no subsample and q = 1 is booked; a seeded
 * draw (reproducible simulations only) is recomputable from the seed and also books q = 1.
 */
import { privacyArgumentError } from './argument-checks.js';
import { poissonSample } from './dp-sgd.js';
import { cryptoRandomSource, uniform53, type RandomSource } from './random.js';

/** What a round's draw was and what the ledger books for it. */
export interface ClientSampling {
  /** `poisson`: the secret CSPRNG draw; `all`: every connected client (q = 1); `seeded`: reproducible, q = 1. */
  readonly kind: 'poisson' | 'all' | 'seeded';
  /** The sampling rate booked: each connected client's probability of being offered, or 1. */
  readonly q: number;
  /** The population drawn from: the connected clients. */
  readonly population: number;
  /** Offered clients the round aims at, ceil(k (1 + overSelection)): the expected size of a Poisson draw. */
  readonly target: number;
  /** A sentence for the job's privacy view: why this q. */
  readonly note: string;
}

/**
 * The sampling of a round over `population` connected clients aiming at `target` offers.
 * @param seeded a reproducible (seeded) draw: books q = 1, since the seed gives the draw away
 */
export function clientSampling(population: number, target: number, seeded = false): ClientSampling {
  if (!(Number.isSafeInteger(population) && population >= 1)) privacyArgumentError('population', 'an integer >= 1', population);
  if (!(Number.isSafeInteger(target) && target >= 1)) privacyArgumentError('target', 'an integer >= 1', target);
  if (seeded) {
    return { kind: 'seeded', q: 1, population, target, note: `q = 1: a seeded (reproducible) selection is no secret subsample; ${Math.min(target, population)} of ${population} connected clients offered` };
  }
  if (population <= target) {
    return { kind: 'all', q: 1, population, target, note: `q = 1: only ${population} clients connected for ${target} offers, so every one was offered (no subsample)` };
  }
  const q = target / population;
  return { kind: 'poisson', q, population, target, note: `q = ${target} / ${population}: each of ${population} connected clients offered independently with this probability (secret CSPRNG draw)` };
}

/**
 * The secret Poisson draw: each id independently with probability `sampling.q` (all when q = 1).
 * The result may be smaller or larger than the target, or empty.
 * @param source @default the node:crypto CSPRNG; a seeded source only in tests
 */
export function drawClients<T>(ids: readonly T[], sampling: ClientSampling, source: RandomSource = cryptoRandomSource()): T[] {
  if (ids.length !== sampling.population) privacyArgumentError('ids', `as many as the sampling's population (${sampling.population})`, ids.length);
  if (sampling.kind === 'seeded') privacyArgumentError('sampling', 'a secret sampling (a seeded one draws with its seed, coordinator/engine/selection.ts)', sampling.kind);
  return Array.from(poissonSample(ids.length, sampling.q, source), (i) => ids[i]!);
}

/**
 * A secret fixed-size draw without replacement: min(count, ids) of `ids` (partial Fisher-Yates on
 * CSPRNG uniforms). For jobs without user-level DP, where no sampling rate is booked.
 * @param source @default the node:crypto CSPRNG
 */
export function drawFixedSize<T>(ids: readonly T[], count: number, source: RandomSource = cryptoRandomSource()): T[] {
  const pool = [...ids];
  const n = Math.min(count, pool.length);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(uniform53(source) * (pool.length - i));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, n);
}
