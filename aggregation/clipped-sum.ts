/**
 * DP-FedAvg's running sum of clipped updates, sum_k s_k x_k with s_k = min(1, C / ||x_k - g||), in
 * one wasm memory: the reference vectors g, the whole update x_k and the float64 sums. An update is
 * copied in once, its distance to g taken by the SIMD `sqdist` kernel and s_k x_k staged from the
 * same copy by the `add` kernel (simd-kernel.ts); with two memories (running-sum.ts
 * referenceDistance and stagedSums) each update was copied twice. The arithmetic is the same float64
 * operations as the JS loops, so the sums are identical to those of referenceDistance + stagedSums.
 * Staging keeps a refused update without a trace, as running-sum.ts StagedSum does.
 */
import { addScaledInto, releaseArena, SIMD_MIN_ELEMENTS, takePooledArena, type Arena } from './running-sum.js';
import { simdArena } from './simd-kernel.js';

export interface ClippedSum {
  /** The committed sums, one per reference vector; views valid until the next commit or release. */
  readonly current: readonly Float64Array[];
  /**
   * Takes in an update (one vector per reference vector, same lengths) and returns sum_v ||x_v - g_v||^2
   * in float64: NaN or Infinity when x holds one.
   */
  load(x: readonly Float32Array[]): number;
  /** Stages current + w x for the loaded update; returns the index of a non-finite vector, or -1. */
  stage(w: number): number;
  /** Makes the staged sums current. Call only after stage returned -1. */
  commit(): void;
  /** Hands the wasm memory back for the next round; nothing may be used afterwards. */
  release(): void;
}

const align = (bytes: number): number => Math.ceil(bytes / 16) * 16;

function checkShapes(x: readonly Float32Array[], reference: readonly Float32Array[]): void {
  if (x.length !== reference.length || x.some((v, i) => v.length !== reference[i]!.length)) {
    throw new RangeError(`clipped sum over ${reference.length} reference vectors given ${x.length} of other lengths`);
  }
}

function squaredDistanceJs(x: Float32Array, g: Float32Array, from: number): number {
  let total = 0;
  for (let j = from; j < x.length; j++) {
    const d = x[j]! - g[j]!;
    total += d * d;
  }
  return total;
}

/**
 * A zero clipped sum over `reference` (the global trainable vectors; read, never changed, and they
 * must not change while the sum is in use). SIMD in a pooled wasm memory when available and the
 * vectors are large enough, else plain JS over the caller's arrays.
 */
export function clippedSum(reference: readonly Float32Array[]): ClippedSum {
  const total = reference.reduce((t, v) => t + v.length, 0);
  let bytes = 0;
  const gAt: number[] = [];
  const xAt: number[] = [];
  const sumAt: Array<[number, number]> = [];
  for (const v of reference) {
    gAt.push(bytes);
    bytes += align(4 * v.length);
  }
  for (const v of reference) {
    xAt.push(bytes);
    bytes += align(4 * v.length);
  }
  for (const v of reference) {
    sumAt.push([bytes, bytes + align(8 * v.length)]);
    bytes += 2 * align(8 * v.length);
  }
  const arena = total < SIMD_MIN_ELEMENTS ? null : (takePooledArena(bytes) ?? simdArena(bytes));
  return arena === null ? new JsClippedSum(reference) : new SimdClippedSum(arena, reference, gAt, xAt, sumAt);
}

class SimdClippedSum implements ClippedSum {
  private readonly views: Array<[Float64Array, Float64Array]>;
  private readonly xs: Float32Array[];
  private loaded: readonly Float32Array[] | null = null;
  private which = 0;
  private released = false;

  constructor(
    private readonly arena: Arena,
    private readonly reference: readonly Float32Array[],
    private readonly gAt: readonly number[],
    private readonly xAt: readonly number[],
    private readonly sumAt: ReadonlyArray<[number, number]>,
  ) {
    reference.forEach((g, i) => new Float32Array(arena.buffer, gAt[i]!, g.length).set(g));
    this.xs = reference.map((g, i) => new Float32Array(arena.buffer, xAt[i]!, g.length));
    this.views = reference.map((g, i) => [new Float64Array(arena.buffer, sumAt[i]![0], g.length), new Float64Array(arena.buffer, sumAt[i]![1], g.length)]);
    // a pooled memory holds another round's numbers
    for (const [a] of this.views) a.fill(0);
  }

  get current(): readonly Float64Array[] {
    return this.views.map((v) => v[this.which]!);
  }

  load(x: readonly Float32Array[]): number {
    checkShapes(x, this.reference);
    let sum = 0;
    x.forEach((v, i) => {
      this.xs[i]!.set(v);
      const body = v.length - (v.length % 4);
      sum += this.arena.sqdist(this.xAt[i]!, this.gAt[i]!, body);
      sum += squaredDistanceJs(v, this.reference[i]!, body);
    });
    this.loaded = x;
    return sum;
  }

  stage(w: number): number {
    const x = this.loaded;
    if (x === null) throw new RangeError('clipped sum: stage() before load()');
    const cur = this.which;
    const spare = 1 - cur;
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      const body = v.length - (v.length % 4);
      let ok = this.arena.add(this.sumAt[i]![spare], this.sumAt[i]![cur], this.xAt[i]!, body, w) === 1;
      const out = this.views[i]![spare];
      const acc = this.views[i]![cur];
      for (let j = body; j < v.length; j++) {
        out[j] = acc[j]! + w * v[j]!;
        ok = ok && Number.isFinite(v[j]!);
      }
      if (!ok) return i;
    }
    return -1;
  }

  commit(): void {
    this.which = 1 - this.which;
    this.loaded = null;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    releaseArena(this.arena);
  }
}

class JsClippedSum implements ClippedSum {
  private sums: Float64Array[];
  private spare: Float64Array[];
  private loaded: readonly Float32Array[] | null = null;

  constructor(private readonly reference: readonly Float32Array[]) {
    this.sums = reference.map((g) => new Float64Array(g.length));
    this.spare = reference.map((g) => new Float64Array(g.length));
  }

  get current(): readonly Float64Array[] {
    return this.sums;
  }

  load(x: readonly Float32Array[]): number {
    checkShapes(x, this.reference);
    this.loaded = x;
    return x.reduce((t, v, i) => t + squaredDistanceJs(v, this.reference[i]!, 0), 0);
  }

  stage(w: number): number {
    const x = this.loaded;
    if (x === null) throw new RangeError('clipped sum: stage() before load()');
    for (let i = 0; i < x.length; i++) if (!addScaledInto(this.spare[i]!, this.sums[i]!, x[i]!, w)) return i;
    return -1;
  }

  commit(): void {
    const s = this.sums;
    this.sums = this.spare;
    this.spare = s;
    this.loaded = null;
  }

  release(): void {}
}
