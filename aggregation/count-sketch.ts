/**
 * A two-sided CountSketch of an m x n matrix X: Y = T^T X S, with T [m, q] and S [n, q] each holding
 * one random +-1 per row (bucket h(i), sign g(i); Charikar, Chen, Farach-Colton 2002; Clarkson &
 * Woodruff 2013). E ||T^T X S||_F^2 = ||X||_F^2, with relative variance about 4 / q for the two sides.
 *
 * For a low-rank X = B A it never forms X: T^T B [q, r] and A S [r, q] cost one touch per element
 * of B and A (as much as averaging them), then their q x r x q product. So FedAvg's noise figure can
 * be estimated while streaming at roughly the cost of the average itself.
 */
import type { SeededRandom } from './seeded-random.js';

export class BilateralCountSketch {
  private readonly rowBucket: Int32Array;
  private readonly rowSign: Float64Array;
  private readonly colBucket: Int32Array;
  private readonly colSign: Float64Array;

  /**
   * @param m rows of the sketched matrices
   * @param n columns
   * @param q buckets per side; the sketch is q x q
   */
  constructor(rng: SeededRandom, m: number, n: number, readonly q: number) {
    this.rowBucket = new Int32Array(m);
    this.rowSign = new Float64Array(m);
    this.colBucket = new Int32Array(n);
    this.colSign = new Float64Array(n);
    for (let i = 0; i < m; i++) {
      this.rowBucket[i] = rng.nextUint32() % q;
      this.rowSign[i] = rng.nextSign();
    }
    for (let j = 0; j < n; j++) {
      this.colBucket[j] = rng.nextUint32() % q;
      this.colSign[j] = rng.nextSign();
    }
  }

  /** A new zero sketch [q, q]. */
  empty(): Float64Array {
    return new Float64Array(this.q * this.q);
  }

  /** Y += c * T^T B A S for B [m, r], A [r, n] row-major. */
  addProduct(Y: Float64Array, B: Float32Array, A: Float32Array, r: number, c: number): void {
    const q = this.q;
    const m = this.rowBucket.length;
    const n = this.colBucket.length;
    const TB = new Float64Array(q * r); // [q, r]
    for (let i = 0; i < m; i++) {
      const out = this.rowBucket[i]! * r;
      const g = this.rowSign[i]!;
      const row = i * r;
      for (let k = 0; k < r; k++) TB[out + k]! += g * B[row + k]!;
    }
    const AS = new Float64Array(r * q); // [r, q]
    for (let k = 0; k < r; k++) {
      const row = k * n;
      const out = k * q;
      for (let j = 0; j < n; j++) AS[out + this.colBucket[j]!]! += this.colSign[j]! * A[row + j]!;
    }
    for (let a = 0; a < q; a++) {
      for (let k = 0; k < r; k++) {
        const t = c * TB[a * r + k]!;
        if (t === 0) continue;
        const out = a * q;
        const src = k * q;
        for (let b = 0; b < q; b++) Y[out + b]! += t * AS[src + b]!;
      }
    }
  }
}
