/**
 * From Renyi DP to (epsilon, delta)-DP: given the RDP curve rdp(alpha) over a set of orders, the
 * smallest epsilon any order certifies for the target delta, and that order.
 *
 * - `improved` (default): Balle, Barthe, Gaboardi, Hsu, Sato 2020, "Hypothesis testing
 *   interpretations and Renyi differential privacy" (AISTATS), Theorem 21:
 *     epsilon(alpha) = rdp(alpha) + log((alpha - 1) / alpha) - (log(delta) + log(alpha)) / (alpha - 1).
 *   Edge handling exactly as dp_accounting's compute_epsilon (rdp_privacy_accountant.py), so the
 *   optimal order agrees with it: orders <= 1.01 certify nothing (+Infinity; the bound is unstable
 *   as alpha -> 1); an order whose rdp is so small that delta^2 + expm1(-rdp) > 0 certifies
 *   epsilon = 0 (the KL bound delta <= sqrt(1 - exp(-rdp))); a negative rdp (only from round-off)
 *   gives 0; the minimum is taken over the orders in their given order (first one wins a tie) and
 *   clamped at 0.
 * - `classic`: Mironov 2017, "Renyi Differential Privacy" (CSF), Proposition 3:
 *     epsilon(alpha) = rdp(alpha) + log(1/delta) / (alpha - 1),
 *   the conversion of Abadi et al. 2016's moments accountant and of TensorFlow Privacy and Opacus
 *   before 2020; orders <= 1 certify nothing.
 */
import { privacyArgumentError } from './argument-checks.js';

export type Conversion = 'improved' | 'classic';

export interface EpsilonAndOrder {
  /** The smallest epsilon over the orders (>= 0; +Infinity when no order certifies a finite one). */
  epsilon: number;
  /** The order that attains it (0 when delta = 0, as in dp_accounting). */
  order: number;
}

/**
 * epsilon certified by one order (see the file comment for both formulas).
 * @param order Renyi order alpha >= 1
 * @param rdp RDP at that order (the composed total)
 * @param delta target delta in (0, 1]
 */
export function epsilonAtOrder(order: number, rdp: number, delta: number, conversion: Conversion = 'improved'): number {
  if (conversion === 'classic') {
    if (!(order > 1)) return Infinity;
    return rdp - Math.log(delta) / (order - 1);
  }
  if (rdp < 0) return 0;
  // RDP at order infinity is pure DP: both bounds tend to rdp (the formula would give Infinity / Infinity).
  if (order === Infinity) return rdp;
  if (delta * delta + Math.expm1(-rdp) > 0) return 0;
  if (order > 1.01) return rdp + Math.log1p(-1 / order) - Math.log(delta * order) / (order - 1);
  return Infinity;
}

/**
 * The smallest epsilon over `orders` for the target delta, and the order that attains it.
 * @param orders Renyi orders, each >= 1 (the list the RDP was computed on)
 * @param rdp the RDP at each order, same length
 * @param delta target delta in [0, 1]; 0 gives epsilon 0 if every rdp is 0, else +Infinity
 * @param conversion @default 'improved' (Balle et al. 2020, Theorem 21); 'classic' is Mironov 2017, Prop. 3
 */
export function epsilonFromRdp(
  orders: ArrayLike<number>,
  rdp: ArrayLike<number>,
  delta: number,
  conversion: Conversion = 'improved',
): EpsilonAndOrder {
  if (typeof delta !== 'number' || !(delta >= 0 && delta <= 1)) privacyArgumentError('delta', 'in [0, 1]', delta);
  if (orders.length !== rdp.length) privacyArgumentError('rdp', `as long as orders (${orders.length})`, `length ${rdp.length}`);
  if (orders.length === 0) privacyArgumentError('orders', 'a non-empty list', '[]');
  for (let k = 0; k < orders.length; k++) {
    const a = orders[k]!;
    if (!(a >= 1)) privacyArgumentError('orders', 'Renyi orders >= 1', a);
    if (Number.isNaN(rdp[k]!)) privacyArgumentError('rdp', 'numbers (not NaN)', `NaN at order ${a}`);
  }
  if (delta === 0) {
    let allZero = true;
    for (let k = 0; k < rdp.length; k++) if (rdp[k] !== 0) allZero = false;
    return { epsilon: allZero ? 0 : Infinity, order: 0 };
  }
  let best = Infinity;
  let bestIndex = 0;
  for (let k = 0; k < orders.length; k++) {
    const eps = epsilonAtOrder(orders[k]!, rdp[k]!, delta, conversion);
    // Strictly smaller: the first order wins a tie, like numpy's argmin.
    if (eps < best) {
      best = eps;
      bestIndex = k;
    }
  }
  return { epsilon: Math.max(0, best), order: orders[bestIndex]! };
}

export interface DeltaAndOrder {
  /** The smallest delta over the orders, in [0, 1]. */
  delta: number;
  /** The order that attains it. */
  order: number;
}

/**
 * The inverse question: the smallest delta any order certifies for a target epsilon.
 * - `improved`: Balle et al. 2020, Theorem 21 solved for delta, in log space:
 *   log delta(alpha) = (alpha - 1)(rdp - epsilon + log(1 - 1/alpha)) - log(alpha), for alpha > 1.01,
 *   and at every order the KL bound log delta <= (1/2) log(1 - exp(-rdp)); the minimum of the two.
 *   Edge handling as dp_accounting's compute_delta: rdp <= 0 gives delta 0; the result is capped at 1.
 * - `classic`: Mironov 2017, Proposition 3 solved for delta: log delta = (alpha - 1)(rdp - epsilon).
 * @param epsilon target epsilon >= 0
 */
export function deltaFromRdp(
  orders: ArrayLike<number>,
  rdp: ArrayLike<number>,
  epsilon: number,
  conversion: Conversion = 'improved',
): DeltaAndOrder {
  if (typeof epsilon !== 'number' || !(epsilon >= 0)) privacyArgumentError('epsilon', 'a number >= 0', epsilon);
  if (orders.length !== rdp.length) privacyArgumentError('rdp', `as long as orders (${orders.length})`, `length ${rdp.length}`);
  if (orders.length === 0) privacyArgumentError('orders', 'a non-empty list', '[]');
  let best = Infinity;
  let bestIndex = 0;
  for (let k = 0; k < orders.length; k++) {
    const a = orders[k]!;
    const r = rdp[k]!;
    if (!(a >= 1)) privacyArgumentError('orders', 'Renyi orders >= 1', a);
    if (Number.isNaN(r)) privacyArgumentError('rdp', 'numbers (not NaN)', `NaN at order ${a}`);
    let logDelta: number;
    if (conversion === 'classic') {
      logDelta = a > 1 ? (a - 1) * (r - epsilon) : Infinity;
    } else {
      logDelta = r <= 0 ? -Infinity : 0.5 * Math.log1p(-Math.exp(-r));
      if (r > 0 && a > 1.01) logDelta = Math.min(logDelta, (a - 1) * (r - epsilon + Math.log1p(-1 / a)) - Math.log(a));
    }
    if (logDelta < best) {
      best = logDelta;
      bestIndex = k;
    }
  }
  return { delta: Math.min(Math.exp(best), 1), order: orders[bestIndex]! };
}
