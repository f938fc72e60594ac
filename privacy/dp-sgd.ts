/**
 * The pieces of client-side DP-SGD (Abadi et al. 2016, "Deep Learning with Differential Privacy",
 * Algorithm 1) as pure functions on typed arrays; client/'s trainer calls them.
 *
 * One step: sample a batch by Poisson sampling at rate q ({@link poissonSample}); clip each
 * example's gradient to L2 norm C (or, as DP-LoRA does for the A and B gradients, each group of
 * tensors to its own C_g); sum; add N(0, sigma^2 S^2) to every coordinate, S the sensitivity
 * (C, or sqrt(sum_g C_g^2) with groups); divide by the EXPECTED batch size q n, not the drawn
 * one: the drawn size depends on who is in the data set, and dividing by it would change the
 * sensitivity the accountant assumes. The accountant charges one sampled Gaussian step per call
 * with (q, sigma).
 *
 * Two ways to get there:
 * - materialised: per-example gradients in hand -> {@link dpSgdGradient} (or, streaming in
 *   micro-batches, {@link DpSgdAccumulator});
 * - ghost clipping (Goodfellow 2015; Li et al. 2022, "Large Language Models Can Be Strong
 *   Differentially Private Learners", Sec. 4): per-example norms from activations and output
 *   gradients ({@link linearGhostNormsSq}, {@link loraGhostNormsSq}), scale factors from the norms
 *   ({@link clipFactors}), a second backward pass on the loss weighted by those factors gives the
 *   clipped sum, then {@link privatizeClippedSum}.
 */
import { FedloraError } from '../shared/errors.js';
import { privacyArgumentError, requireCount, requireNonNegative, requirePositive, requireRate } from './argument-checks.js';
import { addGaussianNoise } from './gaussian.js';
import { cryptoRandomSource, uniform53, type RandomSource } from './random.js';

/** One example's gradient: one Float32Array per trainable tensor, in the same order for all. */
export type ExampleGradient = readonly Float32Array[];

/**
 * How per-example gradients are clipped: one bound for all tensors together, or one bound per
 * group of tensors (DP-LoRA: group 0 = the lora_A gradients, group 1 = the lora_B gradients).
 */
export type ClipSpec = number | { readonly groupOf: readonly number[]; readonly clipNorms: readonly number[] };

/**
 * Poisson sampling: each of n examples joins the batch independently with probability q, so the
 * batch size is Binomial(n, q) (and may be 0). This is the sampling the RDP accountant assumes.
 * @param n number of examples, an integer >= 0
 * @param q sampling rate in (0, 1]
 * @param source uniform bits; @default the node:crypto CSPRNG
 * @returns the chosen example indices, increasing
 */
export function poissonSample(n: number, q: number, source: RandomSource = cryptoRandomSource()): Uint32Array {
  requireCount(n, 'n');
  requireRate(q, 'q');
  const chosen = new Uint32Array(n);
  let k = 0;
  for (let i = 0; i < n; i++) if (q === 1 || uniform53(source) < q) chosen[k++] = i;
  return chosen.slice(0, k);
}

/**
 * The sensitivity of one clipped example: C for a flat bound, sqrt(sum_g C_g^2) for groups.
 * The noise standard deviation is noiseMultiplier times this.
 */
export function clipSensitivity(clip: ClipSpec): number {
  if (typeof clip === 'number') {
    requirePositive(clip, 'clipNorm');
    return clip;
  }
  clip.clipNorms.forEach((c, g) => requirePositive(c, `clipNorms[${g}]`));
  return Math.sqrt(clip.clipNorms.reduce((s, c) => s + c * c, 0));
}

/**
 * Per-example scale factors min(1, C / norm_i) (1 for a zero norm): the weights of the reweighted
 * backward pass of ghost clipping.
 * @param norms per-example gradient norms (not squared), each finite and >= 0
 * @param clipNorm the bound C, finite and > 0
 */
export function clipFactors(norms: ArrayLike<number>, clipNorm: number): Float64Array {
  requirePositive(clipNorm, 'clipNorm');
  const out = new Float64Array(norms.length);
  for (let i = 0; i < norms.length; i++) {
    const n = norms[i]!;
    if (!Number.isFinite(n) || n < 0) privacyArgumentError(`norms[${i}]`, 'a finite number >= 0', n);
    out[i] = n > clipNorm ? clipNorm / n : 1;
  }
  return out;
}

/**
 * Adds N(0, (noiseMultiplier * sensitivity)^2) to each coordinate of a clipped sum and divides by
 * the expected batch size. Also right for an empty batch (a zero sum): the noise must still be
 * added, or the step leaks that no example was sampled.
 * @param clippedSum sum over the batch of clipped per-example gradients, one array per tensor; not mutated
 * @param options.sensitivity C of one clipped example ({@link clipSensitivity})
 * @param options.noiseMultiplier sigma, >= 0 (0 gives non-private clipped SGD, for ablations)
 * @param options.expectedBatchSize q n, > 0
 * @param options.source @default the node:crypto CSPRNG
 * @returns the noisy mean gradient, new Float32Arrays
 */
export function privatizeClippedSum(
  clippedSum: readonly (Float32Array | Float64Array)[],
  options: { sensitivity: number; noiseMultiplier: number; expectedBatchSize: number; source?: RandomSource },
): Float32Array[] {
  requirePositive(options.sensitivity, 'sensitivity');
  requireNonNegative(options.noiseMultiplier, 'noiseMultiplier');
  requirePositive(options.expectedBatchSize, 'expectedBatchSize');
  const std = options.noiseMultiplier * options.sensitivity;
  const source = options.source ?? cryptoRandomSource();
  return clippedSum.map((sum) => {
    const noisy = Float64Array.from(sum); // noise in float64, one rounding to float32 at the end
    addGaussianNoise(noisy, std, source);
    const out = new Float32Array(noisy.length);
    for (let i = 0; i < noisy.length; i++) out[i] = noisy[i]! / options.expectedBatchSize;
    return out;
  });
}

/**
 * Accumulates clipped per-example gradients one example at a time, so a trainer can feed
 * micro-batches without holding every example's gradient. Sums in float64.
 */
export class DpSgdAccumulator {
  private readonly sums: Float64Array[];
  private readonly groupOf: readonly number[];
  private readonly clipNorms: readonly number[];
  /** Examples added. */
  count = 0;
  /** Examples whose gradient was within the bound(s), i.e. left unscaled. */
  unclipped = 0;

  /**
   * @param lengths the element count of each trainable tensor
   * @param clip a flat bound C or per-group bounds ({@link ClipSpec})
   */
  constructor(
    readonly lengths: readonly number[],
    readonly clip: ClipSpec,
  ) {
    lengths.forEach((n, i) => requireCount(n, `lengths[${i}]`));
    clipSensitivity(clip);
    if (typeof clip === 'number') {
      this.groupOf = lengths.map(() => 0);
      this.clipNorms = [clip];
    } else {
      if (clip.groupOf.length !== lengths.length) {
        privacyArgumentError('clip.groupOf', `one group per tensor (${lengths.length})`, `${clip.groupOf.length} entries`);
      }
      clip.groupOf.forEach((g, i) => {
        if (!Number.isInteger(g) || g < 0 || g >= clip.clipNorms.length) privacyArgumentError(`clip.groupOf[${i}]`, `a group index in 0..${clip.clipNorms.length - 1}`, g);
      });
      this.groupOf = clip.groupOf;
      this.clipNorms = clip.clipNorms;
    }
    this.sums = lengths.map((n) => new Float64Array(n));
  }

  /** The L2 sensitivity of one example under this accumulator's clipping. */
  get sensitivity(): number {
    return clipSensitivity(this.clip);
  }

  /**
   * Clips one example's gradient and adds it to the sum; the example's arrays are not kept.
   * @returns the example's norm per group before clipping
   */
  add(example: ExampleGradient): number[] {
    if (example.length !== this.lengths.length) {
      throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `example gradient has ${example.length} tensors, expected ${this.lengths.length}`);
    }
    const groupSq = this.clipNorms.map(() => 0);
    example.forEach((t, i) => {
      if (t.length !== this.lengths[i]) throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `example gradient tensor ${i} has ${t.length} values, expected ${this.lengths[i]}`);
      let s = 0;
      for (let j = 0; j < t.length; j++) s += t[j]! * t[j]!;
      groupSq[this.groupOf[i]!]! += s;
    });
    const norms = groupSq.map(Math.sqrt);
    norms.forEach((n, g) => {
      if (!Number.isFinite(n)) throw new FedloraError('FL_ERR_PRIVACY_ARGUMENT', `example gradient ${this.count} holds NaN or Infinity (group ${g})`);
    });
    const factors = norms.map((n, g) => (n > this.clipNorms[g]! ? this.clipNorms[g]! / n : 1));
    example.forEach((t, i) => {
      const f = factors[this.groupOf[i]!]!;
      const sum = this.sums[i]!;
      for (let j = 0; j < t.length; j++) sum[j] = sum[j]! + f * t[j]!;
    });
    this.count += 1;
    if (factors.every((f) => f === 1)) this.unclipped += 1;
    return norms;
  }

  /** The clipped sum so far (float64, not a copy: do not mutate). */
  get clippedSum(): readonly Float64Array[] {
    return this.sums;
  }

  /**
   * The private gradient of the step: clipped sum + N(0, (sigma S)^2), over the expected batch size.
   * @param options.noiseMultiplier sigma >= 0; options.expectedBatchSize q n > 0
   */
  finish(options: { noiseMultiplier: number; expectedBatchSize: number; source?: RandomSource }): Float32Array[] {
    return privatizeClippedSum(this.sums, { ...options, sensitivity: this.sensitivity });
  }
}

/**
 * One DP-SGD gradient from materialised per-example gradients (Abadi et al. 2016, Alg. 1):
 * clip each, sum, add N(0, sigma^2 S^2), divide by the expected batch size.
 * @param examples the sampled examples' gradients (may be empty: then the result is pure noise)
 * @param options.lengths tensor sizes; @default those of the first example (required when empty)
 */
export function dpSgdGradient(
  examples: readonly ExampleGradient[],
  options: { clip: ClipSpec; noiseMultiplier: number; expectedBatchSize: number; lengths?: readonly number[]; source?: RandomSource },
): { gradient: Float32Array[]; unclipped: number; norms: number[][] } {
  const lengths = options.lengths ?? examples[0]?.map((t) => t.length);
  if (lengths === undefined) privacyArgumentError('lengths', 'given when there are no examples', 'undefined');
  const acc = new DpSgdAccumulator(lengths, options.clip);
  const norms = examples.map((e) => acc.add(e));
  const finishOptions = { noiseMultiplier: options.noiseMultiplier, expectedBatchSize: options.expectedBatchSize, ...(options.source ? { source: options.source } : {}) };
  return { gradient: acc.finish(finishOptions), unclipped: acc.unclipped, norms };
}

function requireLength(array: Float32Array, expected: number, name: string, dims: string): void {
  if (array.length !== expected) throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `${name} has ${array.length} values, expected ${expected} (${dims})`);
}

/**
 * Ghost norms: for each example b, the squared Frobenius norm of M_b = sum_t u_{b,t} v_{b,t}^T,
 * without forming per-example gradients when that is cheaper.
 *
 * For a linear layer y_t = W x_t (or y = x W), the per-example weight gradient is
 * sum_t g_t x_t^T, g_t = dL/dy_t, so with u = g, v = x:
 *   ||sum_t g_t x_t^T||_F^2 = sum_{t,s} (g_t . g_s) (x_t . x_s)   (sequence of T positions)
 *                          = ||g||^2 ||x||^2                     (a single vector, T = 1)
 * The Gram form costs T^2 (p + q) per example; forming M costs T p q. The cheaper one is used.
 * @param u [batch, seqLen, p] row-major (e.g. output gradients)
 * @param v [batch, seqLen, q] row-major (e.g. layer inputs)
 * @returns per-example squared norms, float64
 */
export function ghostNormsSq(u: Float32Array | Float64Array, v: Float32Array | Float64Array, dims: { batch: number; seqLen: number; p: number; q: number }): Float64Array {
  const { batch, seqLen: T, p, q } = dims;
  [batch, T, p, q].forEach((d, i) => requireCount(d, ['batch', 'seqLen', 'p', 'q'][i]!));
  if (u.length !== batch * T * p) throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `u has ${u.length} values, expected ${batch * T * p} ([batch ${batch}, seqLen ${T}, p ${p}])`);
  if (v.length !== batch * T * q) throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `v has ${v.length} values, expected ${batch * T * q} ([batch ${batch}, seqLen ${T}, q ${q}])`);
  const out = new Float64Array(batch);
  const useGram = T * T * (p + q) <= T * p * q;
  const m = useGram ? undefined : new Float64Array(p * q);
  for (let b = 0; b < batch; b++) {
    const u0 = b * T * p;
    const v0 = b * T * q;
    let total = 0;
    if (m === undefined) {
      for (let t = 0; t < T; t++) {
        for (let s = 0; s <= t; s++) {
          let du = 0;
          for (let i = 0; i < p; i++) du += u[u0 + t * p + i]! * u[u0 + s * p + i]!;
          let dv = 0;
          for (let j = 0; j < q; j++) dv += v[v0 + t * q + j]! * v[v0 + s * q + j]!;
          total += (s === t ? 1 : 2) * du * dv; // symmetric: off-diagonal pairs twice
        }
      }
    } else {
      m.fill(0);
      for (let t = 0; t < T; t++) {
        for (let i = 0; i < p; i++) {
          const ui = u[u0 + t * p + i]!;
          if (ui === 0) continue;
          const row = i * q;
          for (let j = 0; j < q; j++) m[row + j] = m[row + j]! + ui * v[v0 + t * q + j]!;
        }
      }
      for (let k = 0; k < m.length; k++) total += m[k]! * m[k]!;
    }
    out[b] = total;
  }
  return out;
}

/**
 * Per-example squared gradient norms of a linear layer y_t = W x_t (any weight layout).
 * @param input x, [batch, seqLen, inFeatures]
 * @param gradOutput dL/dy, [batch, seqLen, outFeatures]
 */
export function linearGhostNormsSq(
  input: Float32Array,
  gradOutput: Float32Array,
  dims: { batch: number; seqLen: number; inFeatures: number; outFeatures: number },
): Float64Array {
  return ghostNormsSq(gradOutput, input, { batch: dims.batch, seqLen: dims.seqLen, p: dims.outFeatures, q: dims.inFeatures });
}

/**
 * Per-example squared gradient norms of a LoRA layer's factors, y_t = W0 x_t + s B (A x_t) with
 * PEFT's A [r, n] and B [m, r], without per-example gradients. With h_t = A x_t and
 * e_t = s B^T g_t (g_t = dL/dy_t):
 *   dL/dB = s sum_t g_t h_t^T -> ||.||^2 = s^2 sum_{t,u} (g_t . g_u)(h_t . h_u)
 *   dL/dA = sum_t e_t x_t^T   -> ||.||^2 = sum_{t,u} (e_t . e_u)(x_t . x_u)
 * @param input x, [batch, seqLen, n]; gradOutput g, [batch, seqLen, m]
 * @param a A, [r, n]; b B, [m, r]; scaling s = alpha / r
 */
export function loraGhostNormsSq(args: {
  input: Float32Array;
  gradOutput: Float32Array;
  a: Float32Array;
  b: Float32Array;
  scaling: number;
  batch: number;
  seqLen: number;
  inFeatures: number;
  outFeatures: number;
  rank: number;
}): { a: Float64Array; b: Float64Array } {
  const { input, gradOutput, a, b, scaling: s, batch, seqLen: T, inFeatures: n, outFeatures: m, rank: r } = args;
  [batch, T, n, m, r].forEach((d, i) => requireCount(d, ['batch', 'seqLen', 'inFeatures', 'outFeatures', 'rank'][i]!));
  requireLength(a, r * n, 'a (lora_A)', `[r ${r}, n ${n}]`);
  requireLength(b, m * r, 'b (lora_B)', `[m ${m}, r ${r}]`);
  requireLength(input, batch * T * n, 'input', `[batch ${batch}, seqLen ${T}, n ${n}]`);
  requireLength(gradOutput, batch * T * m, 'gradOutput', `[batch ${batch}, seqLen ${T}, m ${m}]`);
  const rows = batch * T;
  const h = new Float64Array(rows * r); // h_t = A x_t
  const e = new Float64Array(rows * r); // e_t = s B^T g_t
  for (let row = 0; row < rows; row++) {
    for (let k = 0; k < r; k++) {
      let hk = 0;
      for (let j = 0; j < n; j++) hk += a[k * n + j]! * input[row * n + j]!;
      h[row * r + k] = hk;
      let ek = 0;
      for (let i = 0; i < m; i++) ek += b[i * r + k]! * gradOutput[row * m + i]!;
      e[row * r + k] = s * ek;
    }
  }
  const normsB = ghostNormsSq(gradOutput, h, { batch, seqLen: T, p: m, q: r });
  for (let i = 0; i < batch; i++) normsB[i] = normsB[i]! * s * s;
  const normsA = ghostNormsSq(e, input, { batch, seqLen: T, p: r, q: n });
  return { a: normsA, b: normsB };
}
