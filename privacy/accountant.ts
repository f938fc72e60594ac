/**
 * The RDP accountant: composes steps of the Poisson-subsampled Gaussian mechanism with different
 * (q, sigma) - RDP adds order by order (Mironov 2017, Proposition 1) - and converts the total to
 * (epsilon, delta) with the optimal order. Pure functions over plain arrays; the stateful,
 * persisted record of what each job and client has spent is privacy/ledger.ts.
 */
import { DEFAULT_ORDERS, rdpSampledGaussianOrders, type RdpOptions } from './rdp.js';
import { epsilonFromRdp, type Conversion, type EpsilonAndOrder } from './conversion.js';
import { privacyArgumentError } from './argument-checks.js';

/**
 * `steps` runs of the sampled Gaussian mechanism: sampling rate q, noise multiplier sigma.
 * A plain (not subsampled) Gaussian mechanism, such as one release of Fed-SB's noisy initial
 * gradient statistics, is q = 1.
 */
export interface SampledGaussianEvent {
  q: number;
  sigma: number;
  steps: number;
}

export interface AccountingOptions extends RdpOptions {
  /** @default DEFAULT_ORDERS (1.1 ... 10.9, 11 ... 63, 128, 256, 512, 1024) */
  orders?: readonly number[];
  /** @default 'improved' (Balle et al. 2020, Theorem 21) */
  conversion?: Conversion;
}

/**
 * The composed RDP of a list of events at each order: sum over events of steps * rdp(q, sigma, alpha).
 * @returns one value per order, in the order of `options.orders`
 */
export function composeRdp(events: readonly SampledGaussianEvent[], options: AccountingOptions = {}): Float64Array {
  const orders = options.orders ?? DEFAULT_ORDERS;
  const total = new Float64Array(orders.length);
  events.forEach((e, index) => {
    if (e === null || typeof e !== 'object') privacyArgumentError(`events[${index}]`, 'an object {q, sigma, steps}', e);
    const rdp = rdpSampledGaussianOrders(e.q, e.sigma, e.steps, orders, options);
    for (let k = 0; k < total.length; k++) total[k]! += rdp[k]!;
  });
  return total;
}

/**
 * Adds one RDP vector to another (composition), returning a new array.
 * @throws FL_ERR_PRIVACY_ARGUMENT when the lengths differ
 */
export function addRdp(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  if (a.length !== b.length) privacyArgumentError('rdp', `vectors of one length (${a.length})`, `length ${b.length}`);
  const out = new Float64Array(a.length);
  for (let k = 0; k < a.length; k++) out[k] = a[k]! + b[k]!;
  return out;
}

/**
 * epsilon (and its optimal order) of a composition of events for a target delta.
 * @param delta target delta in (0, 1)
 */
export function epsilonOfEvents(events: readonly SampledGaussianEvent[], delta: number, options: AccountingOptions = {}): EpsilonAndOrder {
  if (typeof delta !== 'number' || !(delta > 0 && delta < 1)) privacyArgumentError('delta', 'in (0, 1)', delta);
  const orders = options.orders ?? DEFAULT_ORDERS;
  return epsilonFromRdp(orders, composeRdp(events, options), delta, options.conversion ?? 'improved');
}

/**
 * epsilon of DP-SGD (or DP-FedAvg) run for `steps` steps at sampling rate q and noise multiplier
 * sigma: the figure `fedlora privacy epsilon` prints.
 */
export function epsilonOfSampledGaussian(q: number, sigma: number, steps: number, delta: number, options: AccountingOptions = {}): EpsilonAndOrder {
  return epsilonOfEvents([{ q, sigma, steps }], delta, options);
}
