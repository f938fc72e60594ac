/**
 * Linear algebra on low-rank products B @ A (B [m, R], A [R, n]) without forming the m x n product:
 * Frobenius norms of sums of products by traces of small Gram matrices, and truncated SVDs by
 * QR of B and A^T followed by the SVD of the small R x R core. QR and SVD of the small matrices come
 * from ml-matrix (float64); the large loops (Grams, products with tall factors) are plain loops on
 * typed arrays, since ml-matrix's element accessors are ~10x slower on tall matrices.
 */
import { Matrix, QrDecomposition, SingularValueDecomposition } from 'ml-matrix';
import type { SeededRandom } from './seeded-random.js';

export type Floats = Float32Array | Float64Array;

/** One term c * B @ A of a sum, B [m, rank], A [rank, n] row-major. */
export interface LowRankTerm {
  readonly B: Floats;
  readonly A: Floats;
  readonly rank: number;
  readonly coef: number;
}

/** tr((B_i^T B_j)(A_j A_i^T)) = <B_i A_i, B_j A_j>_F, in float64, costing (m + n) r_i r_j. */
export function productInner(bi: Floats, ai: Floats, ri: number, bj: Floats, aj: Floats, rj: number, m: number, n: number): number {
  const P = new Float64Array(ri * rj); // B_i^T B_j
  for (let row = 0; row < m; row++) {
    const oi = row * ri;
    const oj = row * rj;
    for (let a = 0; a < ri; a++) {
      const x = bi[oi + a]!;
      if (x === 0) continue;
      const pa = a * rj;
      for (let b = 0; b < rj; b++) P[pa + b]! += x * bj[oj + b]!;
    }
  }
  let trace = 0;
  for (let a = 0; a < ri; a++) {
    const rowA = a * n;
    for (let b = 0; b < rj; b++) {
      const rowB = b * n;
      let q = 0; // (A_j A_i^T)[b, a]
      for (let c = 0; c < n; c++) q += aj[rowB + c]! * ai[rowA + c]!;
      trace += P[a * rj + b]! * q;
    }
  }
  return trace;
}

/**
 * Pairwise inner products <B_i A_i, B_j A_j>_F of the terms (symmetric matrix, float64), so that
 * ||sum_i c_i B_i A_i||_F^2 = sum_ij c_i c_j G[i][j] for any subset of terms.
 */
export function productGram(terms: readonly LowRankTerm[], m: number, n: number): Float64Array {
  const k = terms.length;
  const G = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    for (let j = i; j < k; j++) {
      const ti = terms[i]!;
      const tj = terms[j]!;
      const v = productInner(ti.B, ti.A, ti.rank, tj.B, tj.A, tj.rank, m, n);
      G[i * k + j] = v;
      G[j * k + i] = v;
    }
  }
  return G;
}

/** sum_ij c_i c_j G[i][j] over the terms where include(i), clamped at 0 against rounding. */
export function quadraticForm(G: Float64Array, coefs: readonly number[], include: (i: number) => boolean = () => true): number {
  const k = coefs.length;
  let s = 0;
  for (let i = 0; i < k; i++) {
    if (!include(i)) continue;
    for (let j = 0; j < k; j++) if (include(j)) s += coefs[i]! * coefs[j]! * G[i * k + j]!;
  }
  return Math.max(0, s);
}

function toMatrix(data: Floats, rows: number, cols: number): Matrix {
  const M = new Matrix(rows, cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) M.set(i, j, data[i * cols + j]!);
  return M;
}

function transposeToMatrix(data: Floats, rows: number, cols: number): Matrix {
  const M = new Matrix(cols, rows);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) M.set(j, i, data[i * cols + j]!);
  return M;
}

/** Result of a rank-k truncated SVD of s * B @ A, as factors with scaling 1. */
export interface TruncatedLowRank {
  /** [m, k] */
  readonly B: Float32Array;
  /** [k, n] */
  readonly A: Float32Array;
  readonly rank: number;
  /** All singular values of s * B @ A (at most R), descending. */
  readonly singularValues: number[];
  /** ||s B A - B' A'||_F / ||s B A||_F = sqrt(sum_{i > k} sigma_i^2 / sum_i sigma_i^2); 0 for a zero product. */
  readonly relativeError: number;
}

/**
 * Best rank-k approximation (Eckart-Young) of s * B @ A without forming the m x n product when
 * R <= min(m, n): B = Q_B R_B, A^T = Q_A R_A (thin QR), core = s R_B R_A^T = U S V^T, so
 * s B A = (Q_B U) S (Q_A V)^T and the truncation keeps the first k triplets. The singular values
 * are split evenly: B' = Q_B U_k S_k^(1/2), A' = S_k^(1/2) V_k^T Q_A^T. When R > min(m, n) the
 * product is small and its SVD is taken directly.
 * @param k target rank, clamped to the number of singular values available
 */
export function truncateLowRank(B: Floats, A: Floats, m: number, n: number, R: number, s: number, k: number): TruncatedLowRank {
  let left: Matrix; // [m, t] left singular vectors
  let right: Matrix; // [n, t]
  let sigma: number[];
  if (R <= m && R <= n) {
    const qrB = new QrDecomposition(toMatrix(B, m, R));
    const qrA = new QrDecomposition(transposeToMatrix(A, R, n));
    const core = qrB.upperTriangularMatrix.mmul(qrA.upperTriangularMatrix.transpose()).mul(s);
    const svd = new SingularValueDecomposition(core);
    left = qrB.orthogonalMatrix.mmul(svd.leftSingularVectors);
    right = qrA.orthogonalMatrix.mmul(svd.rightSingularVectors);
    sigma = svd.diagonal;
  } else {
    const dense = new Matrix(m, n);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let v = 0;
        for (let c = 0; c < R; c++) v += B[i * R + c]! * A[c * n + j]!;
        dense.set(i, j, s * v);
      }
    }
    const svd = new SingularValueDecomposition(dense, { autoTranspose: true });
    left = svd.leftSingularVectors;
    right = svd.rightSingularVectors;
    sigma = svd.diagonal;
  }
  const rank = Math.max(0, Math.min(k, sigma.length));
  const outB = new Float32Array(m * rank);
  const outA = new Float32Array(rank * n);
  for (let c = 0; c < rank; c++) {
    const root = Math.sqrt(Math.max(0, sigma[c]!));
    for (let i = 0; i < m; i++) outB[i * rank + c] = left.get(i, c) * root;
    for (let j = 0; j < n; j++) outA[c * n + j] = root * right.get(j, c);
  }
  let total = 0;
  let dropped = 0;
  sigma.forEach((v, i) => {
    total += v * v;
    if (i >= rank) dropped += v * v;
  });
  return { B: outB, A: outA, rank, singularValues: sigma, relativeError: total === 0 ? 0 : Math.sqrt(dropped / total) };
}

/** Thin QR's Q of a [rows, cols] matrix (rows >= cols), orthonormal columns, row-major float64. */
export function orthonormalColumns(data: Floats, rows: number, cols: number): Float64Array {
  const Q = new QrDecomposition(toMatrix(data, rows, cols)).orthogonalMatrix;
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[i * cols + j] = Q.get(i, j);
  return out;
}

/** Rank-k truncated SVD of a dense [m, n] matrix M ~ U diag(S) V^T: U [m, k], V [n, k], row-major float64. */
export interface DenseTruncatedSvd {
  readonly U: Float64Array;
  readonly S: Float64Array;
  readonly V: Float64Array;
  /** `exact`: full SVD; `randomized`: subspace iteration (Halko, Martinsson, Tropp 2011, Alg. 4.4). */
  readonly method: 'exact' | 'randomized';
}

/** C = M^T Q for M [m, n] and Q [m, p]: [n, p]. */
function transposeTimes(M: Floats, m: number, n: number, Q: Floats, p: number): Float64Array {
  const C = new Float64Array(n * p);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      const x = M[i * n + j]!;
      if (x === 0) continue;
      for (let c = 0; c < p; c++) C[j * p + c]! += x * Q[i * p + c]!;
    }
  }
  return C;
}

/** C = M Q for M [m, n] and Q [n, p]: [m, p]. */
function times(M: Floats, m: number, n: number, Q: Floats, p: number): Float64Array {
  const C = new Float64Array(m * p);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      const x = M[i * n + j]!;
      if (x === 0) continue;
      for (let c = 0; c < p; c++) C[i * p + c]! += x * Q[j * p + c]!;
    }
  }
  return C;
}

/**
 * Rank-k truncated SVD of a dense [m, n] matrix. Exact (ml-matrix's full SVD) when
 * min(m, n) <= exactLimit; otherwise randomized subspace iteration with `oversample` extra columns
 * and `powerIterations` passes, seeded by `rng` (the full SVD of a 4096 x 4096 matrix takes minutes in JS).
 * @param exactLimit @default 512
 * @param oversample @default 10
 * @param powerIterations @default 6
 */
export function truncatedSvdDense(M: Floats, m: number, n: number, k: number, rng: SeededRandom, exactLimit = 512, oversample = 10, powerIterations = 6): DenseTruncatedSvd {
  if (Math.min(m, n) <= exactLimit || k + oversample >= Math.min(m, n)) {
    const svd = new SingularValueDecomposition(toMatrix(M, m, n), { autoTranspose: true });
    const U = new Float64Array(m * k);
    const V = new Float64Array(n * k);
    const S = new Float64Array(k);
    for (let c = 0; c < k; c++) {
      S[c] = svd.diagonal[c] ?? 0;
      for (let i = 0; i < m; i++) U[i * k + c] = c < svd.leftSingularVectors.columns ? svd.leftSingularVectors.get(i, c) : 0;
      for (let j = 0; j < n; j++) V[j * k + c] = c < svd.rightSingularVectors.columns ? svd.rightSingularVectors.get(j, c) : 0;
    }
    return { U, S, V, method: 'exact' };
  }
  const p = k + oversample;
  const omega = new Float64Array(n * p);
  for (let i = 0; i < omega.length; i++) omega[i] = rng.nextSymmetric(1);
  let Q = orthonormalColumns(times(M, m, n, omega, p), m, p);
  for (let it = 0; it < powerIterations; it++) {
    const Z = orthonormalColumns(transposeTimes(M, m, n, Q, p), n, p);
    Q = orthonormalColumns(times(M, m, n, Z, p), m, p);
  }
  // Small problem: Q^T M = (M^T Q)^T, [p, n]; its SVD gives M ~ (Q U~) S V^T.
  const small = transposeTimes(M, m, n, Q, p); // [n, p] = (Q^T M)^T
  const svd = new SingularValueDecomposition(toMatrix(small, n, p)); // small = V S U~^T
  const U = new Float64Array(m * k);
  const V = new Float64Array(n * k);
  const S = new Float64Array(k);
  const Utilde = svd.rightSingularVectors; // [p, p]
  for (let c = 0; c < k; c++) {
    S[c] = svd.diagonal[c]!;
    for (let j = 0; j < n; j++) V[j * k + c] = svd.leftSingularVectors.get(j, c);
    for (let i = 0; i < m; i++) {
      let v = 0;
      for (let d = 0; d < p; d++) v += Q[i * p + d]! * Utilde.get(d, c);
      U[i * k + c] = v;
    }
  }
  return { U, S, V, method: 'randomized' };
}
