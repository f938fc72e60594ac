/**
 * The inner loops of every running sum. Sums are kept in float64: a float32 running sum of K terms
 * loses about log2(K) bits and depends on the order of arrival; in float64 each product w * x of an
 * integer weight below 2^29 and a float32 is exact, the sum's error stays ~1e-16 relative, and the
 * one rounding that matters is the final one to float32. The result is then the same, bit for bit
 * in practice, whatever order the clients arrive in.
 */
import { simdArena, type SimdAdd } from './simd-kernel.js';

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

/**
 * out[i] = acc[i] + w * x[i], and whether every x[i] is finite, in one pass: the check costs no
 * extra read of x, only one float64 add per element. The float64 sum of float32 values is finite
 * exactly when every value is (it cannot overflow below 10^269 terms; NaN and +-Infinity propagate,
 * +Infinity + -Infinity is NaN).
 */
export function addScaledInto(out: Float64Array, acc: Float64Array, x: Float32Array, w: number): boolean {
  const n = x.length;
  const end = n - (n % 4);
  let z0 = 0;
  let z1 = 0;
  let i = 0;
  for (; i < end; i += 4) {
    const a = x[i]!;
    const b = x[i + 1]!;
    const c = x[i + 2]!;
    const d = x[i + 3]!;
    out[i] = acc[i]! + w * a;
    out[i + 1] = acc[i + 1]! + w * b;
    out[i + 2] = acc[i + 2]! + w * c;
    out[i + 3] = acc[i + 3]! + w * d;
    z0 += a + b;
    z1 += c + d;
  }
  for (; i < n; i++) {
    const a = x[i]!;
    out[i] = acc[i]! + w * a;
    z0 += a;
  }
  return Number.isFinite(z0 + z1);
}

/**
 * A float64 running sum that reads each update once yet refuses a non-finite one without a trace:
 * `stage` writes current + w x into a spare buffer while checking x, `commit` swaps the buffers.
 * An update is staged tensor by tensor and committed only when every tensor passed, so a refused
 * update leaves every sum as it was. Costs a second buffer (memory 2 x the sum, still flat in the
 * number of clients).
 */
export interface StagedSum {
  /** The committed sum; a view that stays valid until the next commit. */
  readonly current: Float64Array;
  /** Stages current + w x; false (and nothing to commit) when x holds NaN or Infinity. */
  stage(x: Float32Array, w: number): boolean;
  /** Makes the staged sum current. Call only after a successful stage. */
  commit(): void;
}

class JsStagedSum implements StagedSum {
  private spare: Float64Array | null = null;

  constructor(public current: Float64Array) {}

  stage(x: Float32Array, w: number): boolean {
    this.spare ??= new Float64Array(this.current.length);
    return addScaledInto(this.spare, this.current, x, w);
  }

  commit(): void {
    const staged = this.spare!;
    this.spare = this.current;
    this.current = staged;
  }
}

/** A staged sum over an existing array (plain JS loop). */
export function stagedSum(current: Float64Array): StagedSum {
  return new JsStagedSum(current);
}

/** A zero staged sum (plain JS loop). */
export function stagedZeros(length: number): StagedSum {
  return new JsStagedSum(new Float64Array(length));
}

/** Below this many elements in all, sums stay in JS: a wasm memory per round would not pay off. */
export const SIMD_MIN_ELEMENTS = 2 ** 15;

/** A staged sum whose two buffers live in a shared wasm memory, added by the SIMD kernel. */
class SimdStagedSum implements StagedSum {
  private readonly views: [Float64Array, Float64Array];
  private which = 0;

  constructor(
    private readonly arena: { buffer: ArrayBuffer; add: SimdAdd; scratch: Float32Array; scratchOffset: number },
    private readonly offsets: [number, number],
    private readonly length: number,
  ) {
    this.views = [new Float64Array(arena.buffer, offsets[0], length), new Float64Array(arena.buffer, offsets[1], length)];
  }

  get current(): Float64Array {
    return this.views[this.which]!;
  }

  stage(x: Float32Array, w: number): boolean {
    if (x.length !== this.length) throw new RangeError(`staged sum of ${this.length} values given ${x.length}`);
    const cur = this.which;
    const spare = 1 - cur;
    this.arena.scratch.set(x);
    const body = this.length - (this.length % 4);
    let ok = this.arena.add(this.offsets[spare]!, this.offsets[cur]!, this.arena.scratchOffset, body, w) === 1;
    const out = this.views[spare]!;
    const acc = this.views[cur]!;
    for (let i = body; i < this.length; i++) {
      const v = x[i]!;
      out[i] = acc[i]! + w * v;
      ok = ok && Number.isFinite(v);
    }
    return ok;
  }

  commit(): void {
    this.which = 1 - this.which;
  }
}

/**
 * Zero staged sums of the given lengths. With WebAssembly SIMD and at least SIMD_MIN_ELEMENTS in
 * all, they share one wasm memory (two buffers each, plus a scratch for the update) and add with
 * the SIMD kernel (simd-kernel.ts), which computes the same float64 operations as the JS loop, so
 * the results are identical; otherwise plain JS sums.
 */
export function stagedSums(lengths: readonly number[]): StagedSum[] {
  const total = lengths.reduce((t, n) => t + n, 0);
  if (total < SIMD_MIN_ELEMENTS) return lengths.map(stagedZeros);
  const align = (bytes: number) => Math.ceil(bytes / 16) * 16;
  const scratchBytes = align(4 * Math.max(...lengths));
  const bytes = lengths.reduce((t, n) => t + 2 * align(8 * n), scratchBytes);
  const pooled = takePooledArena(bytes);
  const memory = pooled ?? simdArena(bytes);
  if (memory === null) return lengths.map(stagedZeros);
  let offset = 0;
  const sums = lengths.map((n) => {
    const offsets: [number, number] = [offset, offset + align(8 * n)];
    offset += 2 * align(8 * n);
    return { offsets, n };
  });
  const scratchOffset = offset; // one scratch for the update's tensor, shared: stage copies then adds at once
  const staged = sums.map(({ offsets, n }) => new SimdStagedSum({ buffer: memory.buffer, add: memory.add, scratch: new Float32Array(memory.buffer, scratchOffset, n), scratchOffset }, offsets, n));
  // a reused memory holds the last round's numbers: the starting sums must be zero
  if (pooled !== null) for (const sum of staged) sum.current.fill(0);
  arenaOf.set(staged, memory);
  return staged;
}

export type Arena = NonNullable<ReturnType<typeof simdArena>>;

/** The wasm memory behind each list of sums stagedSums returned, for releaseStagedSums. */
const arenaOf = new WeakMap<readonly StagedSum[], Arena>();
/** Released memories, largest last; at most ARENA_POOL_SIZE are kept. */
const arenaPool: Arena[] = [];
const ARENA_POOL_SIZE = 3;

/** A released wasm memory of at least `bytes` (the smallest such), or null: for other users of the pool (clipped-sum.ts). */
export function takePooledArena(bytes: number): Arena | null {
  // the smallest released memory that is large enough
  const i = arenaPool.findIndex((a) => a.buffer.byteLength >= bytes);
  if (i < 0) return null;
  return arenaPool.splice(i, 1)[0]!;
}

/**
 * Hands the wasm memory of sums made by {@link stagedSums} back for the next round's sums: a fresh
 * memory costs a page fault per 4 KiB on first touch, which on the dev machine's VM made a fresh
 * 67 MB arena cost as much as 80 adds into a reused one (bench/aggregation.bench.ts). Call it only
 * once nothing reads the sums (or views of `current`) any more, e.g. after copying them out in
 * finish(); sums that are never released are simply garbage-collected.
 */
export function releaseStagedSums(sums: readonly StagedSum[]): void {
  const arena = arenaOf.get(sums);
  if (arena === undefined) return; // plain JS sums, or released already
  arenaOf.delete(sums);
  releaseArena(arena);
}

/** Hands a wasm memory (from simdArena or takePooledArena) to the pool; nothing may use it afterwards. */
export function releaseArena(arena: Arena): void {
  arenaPool.push(arena);
  arenaPool.sort((a, b) => a.buffer.byteLength - b.buffer.byteLength);
  if (arenaPool.length > ARENA_POOL_SIZE) arenaPool.shift(); // keep the largest
}

/** The squared L2 distance of vectors to fixed reference vectors (DP-FedAvg's x_k - g). */
export interface ReferenceDistance {
  /** sum over vectors of ||x_v - g_v||^2 in float64; NaN or Infinity when x holds one. */
  squared(x: readonly Float32Array[]): number;
  /** Hands the wasm memory back for the next round; the object must not be used afterwards. */
  release(): void;
}

/**
 * A {@link ReferenceDistance} by the SIMD kernel (simd-kernel.ts `sqdist`): the reference vectors
 * are copied once into a wasm memory (pooled with the staged sums' memories), each x into a
 * scratch beside them; plain JS where SIMD is unavailable or the vectors are small.
 * @param reference the vectors distances are taken to (copied into the memory; their tails past a
 *   multiple of 4 are read from them, so they must not change while this is in use)
 */
export function referenceDistance(reference: readonly Float32Array[]): ReferenceDistance {
  const jsSquared = (x: readonly Float32Array[]): number => {
    let total = 0;
    x.forEach((v, i) => {
      const g = reference[i]!;
      for (let j = 0; j < v.length; j++) {
        const d = v[j]! - g[j]!;
        total += d * d;
      }
    });
    return total;
  };
  const checkShapes = (x: readonly Float32Array[]): void => {
    if (x.length !== reference.length || x.some((v, i) => v.length !== reference[i]!.length)) {
      throw new RangeError(`distance to ${reference.length} reference vectors given ${x.length} of other lengths`);
    }
  };
  const total = reference.reduce((t, v) => t + v.length, 0);
  const align = (bytes: number) => Math.ceil(bytes / 16) * 16;
  const offsets: number[] = [];
  let bytes = 0;
  for (const v of reference) {
    offsets.push(bytes);
    bytes += align(4 * v.length);
  }
  const scratchOffset = bytes;
  bytes += align(4 * Math.max(0, ...reference.map((v) => v.length)));
  const arena = total < SIMD_MIN_ELEMENTS ? null : (takePooledArena(bytes) ?? simdArena(bytes));
  if (arena === null) {
    return {
      squared: (x) => {
        checkShapes(x);
        return jsSquared(x);
      },
      release: () => undefined,
    };
  }
  reference.forEach((v, i) => new Float32Array(arena.buffer, offsets[i]!, v.length).set(v));
  let released = false;
  return {
    squared(x) {
      checkShapes(x);
      let sum = 0;
      x.forEach((v, i) => {
        new Float32Array(arena.buffer, scratchOffset, v.length).set(v);
        const body = v.length - (v.length % 4);
        sum += arena.sqdist(scratchOffset, offsets[i]!, body);
        const g = reference[i]!;
        for (let j = body; j < v.length; j++) {
          const d = v[j]! - g[j]!;
          sum += d * d;
        }
      });
      return sum;
    },
    release() {
      if (released) return;
      released = true;
      releaseArena(arena);
    },
  };
}
