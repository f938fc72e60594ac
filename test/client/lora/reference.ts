/** Float64 reference linear algebra for the client tests: plain loops, independent of tfjs. */

/** Row-major [rows, cols] matrix of float64. */
export interface Mat { rows: number; cols: number; data: Float64Array }

export function mat(rows: number, cols: number, values: ArrayLike<number>): Mat {
  if (values.length !== rows * cols) throw new Error(`mat: ${values.length} values for [${rows}, ${cols}]`);
  return { rows, cols, data: Float64Array.from(values) };
}

export function matmul(a: Mat, b: Mat): Mat {
  if (a.cols !== b.rows) throw new Error(`matmul: [${a.rows}, ${a.cols}] x [${b.rows}, ${b.cols}]`);
  const out = new Float64Array(a.rows * b.cols);
  for (let i = 0; i < a.rows; i++) {
    for (let k = 0; k < a.cols; k++) {
      const aik = a.data[i * a.cols + k]!;
      for (let j = 0; j < b.cols; j++) out[i * b.cols + j]! += aik * b.data[k * b.cols + j]!;
    }
  }
  return { rows: a.rows, cols: b.cols, data: out };
}

export function transpose(a: Mat): Mat {
  const out = new Float64Array(a.rows * a.cols);
  for (let i = 0; i < a.rows; i++) for (let j = 0; j < a.cols; j++) out[j * a.rows + i] = a.data[i * a.cols + j]!;
  return { rows: a.cols, cols: a.rows, data: out };
}

export function add(a: Mat, b: Mat, scaleB = 1): Mat {
  return { rows: a.rows, cols: a.cols, data: a.data.map((v, i) => v + scaleB * b.data[i]!) };
}

export function scale(a: Mat, s: number): Mat {
  return { rows: a.rows, cols: a.cols, data: a.data.map((v) => v * s) };
}

/** max |a - b| over two equally long arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`maxAbsDiff: lengths ${a.length} and ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Deterministic float32 test values in [-1, 1) from a seed (a small LCG; only for test inputs). */
export function testValues(n: number, seed: number): Float32Array {
  let s = (seed * 2654435761 + 12345) >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}
