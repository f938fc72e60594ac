/**
 * L2 clipping, the step that bounds one contribution's sensitivity before Gaussian noise
 * (Abadi et al. 2016, Alg. 1 "clip gradient"; McMahan et al. 2018, DP-FedAvg "clip update").
 * Flat clipping scales all vectors together to total norm <= maxNorm; per-layer clipping scales
 * each vector to its own bound (McMahan et al. 2018, Sec. 3 "per-layer clipping"), for a total
 * sensitivity of sqrt(sum maxNorms_i^2) ({@link perLayerSensitivity}).
 *
 * Inputs are never mutated; outputs are new Float32Arrays. Norms are accumulated in float64.
 */
import { FedloraError } from '../shared/errors.js';
import { privacyArgumentError, requirePositive } from './argument-checks.js';

/** The result of flat clipping. */
export interface ClipResult {
  /** New arrays, one per input vector, scaled by `scale`. */
  readonly clipped: Float32Array[];
  /** The L2 norm of all input vectors together, before clipping. */
  readonly norm: number;
  /** The factor applied: min(1, maxNorm / norm), nudged down if float32 rounding would overshoot. */
  readonly scale: number;
}

/** The result of per-layer clipping. */
export interface PerLayerClipResult extends ClipResult {
  /** Overall norm after clipping divided by `norm` (1 when `norm` is 0). */
  readonly scale: number;
  /** The L2 norm of each input vector before clipping. */
  readonly norms: number[];
  /** The factor applied to each vector: min(1, maxNorms[i] / norms[i]). */
  readonly scales: number[];
}

/** Sum of squares of one vector, accumulated in float64. */
function sumOfSquares(v: Float32Array): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!;
    s += x * x;
  }
  return s;
}

/**
 * The L2 norm of several vectors taken together, as if concatenated, accumulated in float64.
 * NaN if any element is NaN, Infinity if any is infinite.
 */
export function l2Norm(vectors: readonly Float32Array[]): number {
  let s = 0;
  for (const v of vectors) s += sumOfSquares(v);
  return Math.sqrt(s);
}

function requireFiniteNorm(norm: number, vectors: readonly Float32Array[]): void {
  if (Number.isFinite(norm)) return;
  const bad = vectors.findIndex((v) => !Number.isFinite(sumOfSquares(v)));
  throw new FedloraError('FL_ERR_PRIVACY_ARGUMENT', `vectors must hold finite values to be clipped: vector ${bad} holds NaN or Infinity`, { vector: bad });
}

/**
 * Copies `vectors` scaled by `scale`, then nudges the scale down until float32 rounding of the
 * scaled values cannot push the norm above `maxNorm` (the sensitivity bound must hold exactly).
 */
function scaleWithin(vectors: readonly Float32Array[], scale: number, maxNorm: number): { clipped: Float32Array[]; scale: number } {
  let s = scale;
  const sumSq = new Float64Array(1);
  for (;;) {
    sumSq[0] = 0;
    const clipped = vectors.map((v) => scaledCopy(v, s, sumSq));
    if (s === 1 || Math.sqrt(sumSq[0]!) <= maxNorm) return { clipped, scale: s };
    s *= 1 - 2 ** -22; // a few float32 ulps: one retry is almost always enough
  }
}

/**
 * v * s as a new Float32Array, adding the squared norm of the rounded output to sumSq[0] in the
 * same pass (a plain function with a local accumulator: V8 keeps the loop tight).
 */
function scaledCopy(v: Float32Array, s: number, sumSq: Float64Array): Float32Array {
  const out = new Float32Array(v.length);
  let q = 0;
  for (let i = 0; i < v.length; i++) {
    const x = Math.fround(v[i]! * s);
    out[i] = x;
    q += x * x;
  }
  sumSq[0] = sumSq[0]! + q;
  return out;
}

/**
 * Flat L2 clipping: scales all vectors together so their joint norm is at most `maxNorm`.
 * @param vectors the update, one Float32Array per tensor; not mutated
 * @param maxNorm the clipping bound C, finite and > 0
 * @returns new arrays, the norm before clipping and the scale applied (1 when norm <= maxNorm)
 */
export function clipL2(vectors: readonly Float32Array[], maxNorm: number): ClipResult {
  requirePositive(maxNorm, 'maxNorm');
  const norm = l2Norm(vectors);
  requireFiniteNorm(norm, vectors);
  const wanted = norm > maxNorm ? maxNorm / norm : 1;
  const { clipped, scale } = scaleWithin(vectors, wanted, maxNorm);
  return { clipped, norm, scale };
}

/**
 * Per-layer L2 clipping: scales vector i alone so its norm is at most maxNorms[i].
 * @param vectors one Float32Array per layer (tensor); not mutated
 * @param maxNorms one bound per vector, each finite and > 0
 */
export function clipL2PerLayer(vectors: readonly Float32Array[], maxNorms: readonly number[]): PerLayerClipResult {
  if (maxNorms.length !== vectors.length) {
    privacyArgumentError('maxNorms', `one bound per vector (${vectors.length})`, `${maxNorms.length} bounds`);
  }
  maxNorms.forEach((c, i) => requirePositive(c, `maxNorms[${i}]`));
  const norms = vectors.map((v) => Math.sqrt(sumOfSquares(v)));
  const norm = l2Norm(vectors);
  requireFiniteNorm(norm, vectors);
  const clipped: Float32Array[] = [];
  const scales: number[] = [];
  norms.forEach((n, i) => {
    const c = maxNorms[i]!;
    const layer = scaleWithin([vectors[i]!], n > c ? c / n : 1, c);
    clipped.push(layer.clipped[0]!);
    scales.push(layer.scale);
  });
  const scale = norm === 0 ? 1 : l2Norm(clipped) / norm;
  return { clipped, norm, scale, norms, scales };
}

/**
 * The L2 sensitivity of per-layer clipping, sqrt(sum maxNorms_i^2): the C to scale the noise by.
 * @param maxNorms the per-layer bounds, each finite and > 0
 */
export function perLayerSensitivity(maxNorms: readonly number[]): number {
  maxNorms.forEach((c, i) => requirePositive(c, `maxNorms[${i}]`));
  return Math.sqrt(maxNorms.reduce((s, c) => s + c * c, 0));
}

/**
 * The L2 distance between two lists of vectors, ||x - y|| over all of them together, in float64
 * (a difference of two float32 values is exact there): the norm of a client's update for flat
 * clipping without materialising the update. NaN or Infinity when x or y holds one.
 * @param x the client's vectors; y the reference vectors, the same lengths
 */
export function l2Distance(x: readonly Float32Array[], y: readonly Float32Array[]): number {
  if (x.length !== y.length) privacyArgumentError('y', `as many vectors as x (${x.length})`, y.length);
  let squares = 0;
  for (let v = 0; v < x.length; v++) {
    if (x[v]!.length !== y[v]!.length) privacyArgumentError(`y[${v}]`, `${x[v]!.length} values like x[${v}]`, y[v]!.length);
    squares += squaredDistance(x[v]!, y[v]!);
  }
  return Math.sqrt(squares);
}

/**
 * The factor that clips a vector of L2 norm `norm` to `maxNorm`: min(1, maxNorm / norm), lowered by
 * 2^-28 relative when clipping so that float64 rounding in the norm and in the scaled sum (at most
 * n 2^-53 relative for n values, below 2^-28 up to 2^25 values) never lets the contribution exceed
 * maxNorm.
 * @param norm finite, >= 0
 * @param maxNorm C, finite and > 0
 */
export function clipFactor(norm: number, maxNorm: number): number {
  requirePositive(maxNorm, 'maxNorm');
  if (!(Number.isFinite(norm) && norm >= 0)) privacyArgumentError('norm', 'a finite number >= 0', norm);
  return norm > maxNorm ? (maxNorm / norm) * (1 - 2 ** -28) : 1;
}

/** sum (a - b)^2 in float64; two accumulators so the adds pipeline. */
function squaredDistance(a: Float32Array, b: Float32Array): number {
  const n = a.length;
  let s0 = 0;
  let s1 = 0;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const d0 = a[i]! - b[i]!;
    const d1 = a[i + 1]! - b[i + 1]!;
    s0 += d0 * d0;
    s1 += d1 * d1;
  }
  if (i < n) {
    const d = a[i]! - b[i]!;
    s0 += d * d;
  }
  return s0 + s1;
}
