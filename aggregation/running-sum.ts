/**
 * The inner loops of every running sum. Sums are kept in float64: a float32 running sum of K terms
 * loses about log2(K) bits and depends on the order of arrival; in float64 each product w * x of an
 * integer weight below 2^29 and a float32 is exact, the sum's error stays ~1e-16 relative, and the
 * one rounding that matters is the final one to float32. The result is then the same, bit for bit
 * in practice, whatever order the clients arrive in.
 */

/** acc[i] += w * x[i] (unrolled by 4: ~30% faster in V8 on 33 MB updates, measured) */
export function addScaled(acc: Float64Array, x: Float32Array, w: number): void {
  const n = x.length;
  const end = n - (n % 4);
  let i = 0;
  for (; i < end; i += 4) {
    acc[i]! += w * x[i]!;
    acc[i + 1]! += w * x[i + 1]!;
    acc[i + 2]! += w * x[i + 2]!;
    acc[i + 3]! += w * x[i + 3]!;
  }
  for (; i < n; i++) acc[i]! += w * x[i]!;
}

/**
 * Adds w * X (rows x cols, row-major) into the top-left block of acc (rows x accCols): used for
 * B [m, r_k] into a zero-padded [m, r_max] sum.
 */
export function addScaledColumns(acc: Float64Array, accCols: number, x: Float32Array, rows: number, cols: number, w: number): void {
  for (let i = 0; i < rows; i++) {
    const a = i * accCols;
    const b = i * cols;
    for (let j = 0; j < cols; j++) acc[a + j]! += w * x[b + j]!;
  }
}

/** out[i] = fround(acc[i] * scale): the one final rounding to float32. */
export function toFloat32(acc: Float64Array, scale: number): Float32Array {
  const out = new Float32Array(acc.length);
  for (let i = 0; i < acc.length; i++) out[i] = acc[i]! * scale;
  return out;
}

/** A [rows, cols] matrix widened to cols' >= cols columns, new columns zero. */
export function widenColumns(acc: Float64Array, rows: number, cols: number, newCols: number): Float64Array {
  const out = new Float64Array(rows * newCols);
  for (let i = 0; i < rows; i++) out.set(acc.subarray(i * cols, (i + 1) * cols), i * newCols);
  return out;
}

/** A [rows, cols] matrix grown to rows' >= rows rows, new rows zero. */
export function growRows(acc: Float64Array, newRows: number, cols: number): Float64Array {
  const out = new Float64Array(newRows * cols);
  out.set(acc);
  return out;
}
