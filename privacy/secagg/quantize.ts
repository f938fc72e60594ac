/**
 * Fixed-point quantisation for secure aggregation (Bonawitz et al. 2017 Sec. 3; Flower's SecAgg+
 * defaults: clipping range c = 8.0, quantisation range T = 2^22, modulus 2^32).
 *
 * Each coordinate x is clipped to [-c, c], mapped to u = (x + c) T / (2c) in [0, T] and rounded
 * stochastically: q = floor(u) + [U < u - floor(u)], U uniform in [0, 1), so E[q] = u (unbiased).
 * The sum of n such integers lies in [0, n T], so it is exact mod 2^32 while n T < 2^32.
 * Dequantising the sum: S = Q (2c / T) - n c.
 *
 * Error bound (inputs inside [-c, c]): each rounding error e_k = q_k - u_k lies in (-1, 1), so
 * |S - sum_k x_k| < n Delta with Delta = 2c / T (deterministic). The e_k are independent, zero-mean
 * and each in an interval of length 1, so by Hoeffding P(|sum e_k| >= s) <= 2 exp(-2 s^2 / n):
 * typically the error is about sqrt(n) Delta / 2, far below the bound. Coordinates outside [-c, c]
 * are clipped: that error is not bounded by this and is counted in `clippedCoordinates`.
 */
import { FedloraError } from '../../shared/errors.js';
import { cryptoRandomSource, uniform53, type RandomSource } from '../random.js';

export const DEFAULT_CLIP_RANGE = 8.0;
export const DEFAULT_QUANT_RANGE = 2 ** 22;
const MODULUS = 2 ** 32;

export interface QuantisationParams {
  /** c: coordinates are clipped to [-c, c]. Finite and > 0. @default 8.0 */
  readonly clipRange: number;
  /** T: [-c, c] maps onto the integers [0, T]. An integer in [1, 2^31]. @default 2^22 */
  readonly quantRange: number;
}

/** The largest number of summands whose quantised sum stays below 2^32: floor((2^32 - 1) / T). */
export function maxSummands(quantRange: number): number {
  return Math.floor((MODULUS - 1) / quantRange);
}

export function checkQuantisation(p: QuantisationParams, summands: number): void {
  if (!(Number.isFinite(p.clipRange) && p.clipRange > 0)) {
    throw new FedloraError('FL_ERR_SECAGG_CONFIG', `secure aggregation: clipRange must be finite and > 0, got ${p.clipRange}`, { field: 'clipRange' });
  }
  if (!(Number.isInteger(p.quantRange) && p.quantRange >= 1 && p.quantRange <= 2 ** 31)) {
    throw new FedloraError('FL_ERR_SECAGG_CONFIG', `secure aggregation: quantRange must be an integer in [1, 2^31], got ${p.quantRange}`, { field: 'quantRange' });
  }
  if (summands > maxSummands(p.quantRange)) {
    throw new FedloraError(
      'FL_ERR_SECAGG_CONFIG',
      `secure aggregation: ${summands} clients x quantRange ${p.quantRange} overflow the modulus 2^32; at most ${maxSummands(p.quantRange)} clients, or lower quantRange`,
      { field: 'quantRange' },
    );
  }
}

/** The deterministic bound on |dequantised sum - true sum| per coordinate for n summands: n 2c / T. */
export function quantisationErrorBound(p: QuantisationParams, summands: number): number {
  return (summands * 2 * p.clipRange) / p.quantRange;
}

/**
 * Quantises a vector into integers in [0, T] (returned in a Uint32Array, ready for masking).
 * @param source uniform bits for the stochastic rounding; @default the node:crypto CSPRNG
 */
export function quantise(values: ArrayLike<number>, p: QuantisationParams, source: RandomSource = cryptoRandomSource()): { quantised: Uint32Array; clippedCoordinates: number } {
  const out = new Uint32Array(values.length);
  const scale = p.quantRange / (2 * p.clipRange);
  let clipped = 0;
  for (let i = 0; i < values.length; i++) {
    let x = values[i]!;
    if (Number.isNaN(x)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `secure aggregation: value ${i} to quantise is NaN`);
    if (x > p.clipRange) {
      x = p.clipRange;
      clipped++;
    } else if (x < -p.clipRange) {
      x = -p.clipRange;
      clipped++;
    }
    const u = (x + p.clipRange) * scale;
    const floor = Math.floor(u);
    out[i] = Math.min(p.quantRange, floor + (uniform53(source) < u - floor ? 1 : 0));
  }
  return { quantised: out, clippedCoordinates: clipped };
}

/** S = Q (2c / T) - n c per coordinate: the real-valued sum of `summands` quantised vectors. */
export function dequantiseSum(sum: Uint32Array, p: QuantisationParams, summands: number): Float64Array {
  const out = new Float64Array(sum.length);
  const step = (2 * p.clipRange) / p.quantRange;
  const offset = summands * p.clipRange;
  for (let i = 0; i < sum.length; i++) out[i] = sum[i]! * step - offset;
  return out;
}
