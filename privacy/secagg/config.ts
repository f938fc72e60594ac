/**
 * The settings of one secure aggregation round, checked once and shared by the coordinator and
 * every client of the round (the coordinator sends them in the round's offer).
 */
import { FedloraError } from '../../shared/errors.js';
import { defaultDegree, defaultThreshold } from './neighbourhood.js';
import { checkQuantisation, DEFAULT_CLIP_RANGE, DEFAULT_QUANT_RANGE, type QuantisationParams } from './quantize.js';

export interface SecAggSettings {
  /** Binds every key, mask and share to one round, e.g. `${jobId}/round-${round}`. */
  readonly context: string;
  /** The round's sampled client ids, distinct; a client's share point is its index + 1. */
  readonly clients: readonly string[];
  /** Number of values each client aggregates. */
  readonly vectorLength: number;
  /** The seed of the neighbourhood graph (neighbourhood.ts). */
  readonly graphSeed: string;
  /** k, neighbours per client. @default defaultDegree(n) */
  readonly degree?: number;
  /** t, shares needed to recover a secret, in (k/2, k]. @default floor(k/2) + 1 */
  readonly threshold?: number;
  /** The fewest clients whose sum the coordinator may learn. @default max(2, t) */
  readonly minSurvivors?: number;
  /** @default 8.0 */
  readonly clipRange?: number;
  /** @default 2^22 */
  readonly quantRange?: number;
}

export interface SecAggConfig extends QuantisationParams {
  readonly context: string;
  readonly clients: readonly string[];
  readonly vectorLength: number;
  readonly graphSeed: string;
  readonly degree: number;
  readonly threshold: number;
  readonly minSurvivors: number;
}

function configError(field: string, rule: string): never {
  throw new FedloraError('FL_ERR_SECAGG_CONFIG', `secure aggregation: ${field} ${rule}`, { field });
}

/**
 * Fills the defaults and checks the settings.
 * @throws FL_ERR_SECAGG_CONFIG naming the field
 */
export function secAggConfig(s: SecAggSettings): SecAggConfig {
  const n = s.clients.length;
  if (n < 2) configError('clients', `needs at least 2 clients, got ${n}`);
  if (new Set(s.clients).size !== n) configError('clients', 'holds an id twice');
  if (!(Number.isInteger(s.vectorLength) && s.vectorLength >= 1)) configError('vectorLength', `must be an integer >= 1, got ${s.vectorLength}`);
  if (s.context.length === 0) configError('context', 'must not be empty');
  const degree = s.degree ?? defaultDegree(n);
  if (!(degree === n - 1 || (Number.isInteger(degree) && degree >= 2 && degree % 2 === 0 && degree <= n - 2))) {
    configError('degree', `must be ${n - 1} (all clients) or an even integer in [2, ${n - 2}], got ${degree}`);
  }
  const threshold = s.threshold ?? defaultThreshold(degree);
  // t > k/2: each honest client reveals one of a neighbour's two secrets, never both, so the
  // coordinator cannot collect t shares of both from a neighbourhood (Bonawitz et al. Sec. 4).
  if (!(Number.isInteger(threshold) && threshold > degree / 2 && threshold <= degree)) {
    configError('threshold', `must be an integer in (${degree / 2}, ${degree}] (more than half of the ${degree} neighbours), got ${threshold}`);
  }
  const minSurvivors = s.minSurvivors ?? Math.max(2, threshold);
  if (!(Number.isInteger(minSurvivors) && minSurvivors >= 2 && minSurvivors <= n)) configError('minSurvivors', `must be an integer in [2, ${n}], got ${minSurvivors}`);
  const q = { clipRange: s.clipRange ?? DEFAULT_CLIP_RANGE, quantRange: s.quantRange ?? DEFAULT_QUANT_RANGE };
  checkQuantisation(q, n);
  return Object.freeze({ context: s.context, clients: Object.freeze([...s.clients]), vectorLength: s.vectorLength, graphSeed: s.graphSeed, degree, threshold, minSurvivors, ...q });
}
