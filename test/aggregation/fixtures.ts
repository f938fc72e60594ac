/**
 * Test fixtures for aggregation: seeded random layouts and client updates, and the independent
 * float64 references (naive triple loops, nothing shared with aggregation/ but the types).
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Adapter, AdapterModule, ModuleFactors } from '../../shared/adapter.js';
import { SeededRandom } from '../../aggregation/seeded-random.js';
import type { ClientUpdate, GlobalState, Strategy } from '../../aggregation/strategy.js';

export function moduleSpec(path: string, outFeatures: number, inFeatures: number, rank: number, alpha = 2 * rank): AdapterModule {
  return { path, outFeatures, inFeatures, rank, alpha };
}

/** Two small modules of a tiny "model", enough to exercise per-module bookkeeping. */
export const SMALL_MODULES: readonly AdapterModule[] = [moduleSpec('model.layers.0.self_attn.q_proj', 6, 5, 2), moduleSpec('model.layers.0.self_attn.v_proj', 4, 7, 3)];

/** Deep copy of an adapter's data, for no-mutation checks. */
export function snapshot(adapter: Adapter): Map<string, Record<string, number[]>> {
  const out = new Map<string, Record<string, number[]>>();
  for (const [path, f] of adapter.factors) {
    const rec: Record<string, number[]> = {};
    for (const k of ['A', 'B', 'R'] as const) if (f[k]) rec[k] = Array.from(f[k]);
    out.set(path, rec);
  }
  return out;
}

/**
 * A client update compatible with `state` for `strategy`: the global adapter with the trainable
 * factors replaced by seeded random values (flora: fresh factors of the client's rank).
 */
export function clientUpdate(strategy: Strategy, state: GlobalState, seed: string, numExamples: number, rank?: number): ClientUpdate {
  const rng = SeededRandom.fromSeed('test/client', seed);
  const [plan] = strategy.plan(state, [{ id: seed, rank }]);
  const factors = new Map<string, ModuleFactors>();
  const modules: AdapterModule[] = [];
  for (const m of plan!.modules) {
    const g = state.adapter?.factors.get(m.path);
    const f: { A?: Float32Array; B?: Float32Array; R?: Float32Array } = {};
    const rnd = (len: number): Float32Array => rng.uniformArray(len, 1);
    f.A = strategy.trainable.includes('A') || g?.A === undefined ? rnd(m.rank * m.inFeatures) : g.A;
    f.B = strategy.trainable.includes('B') || g?.B === undefined ? rnd(m.outFeatures * m.rank) : g.B;
    if (strategy.variant === 'fedsb') f.R = rnd(m.rank * m.rank);
    factors.set(m.path, f);
    modules.push(m);
  }
  return { adapter: { layout: { variant: strategy.variant, modules }, factors }, numExamples, source: `client-${seed}` };
}

/** s * B (R) A of one module, dense [m, n] in float64, by naive loops. */
export function denseDelta(adapter: Adapter, path: string): Float64Array {
  const m = adapter.layout.modules.find((x) => x.path === path)!;
  const f = adapter.factors.get(path)!;
  const { outFeatures: rows, inFeatures: n, rank: r } = m;
  const s = m.alpha / r;
  let B: Float64Array = Float64Array.from(f.B!);
  if (f.R !== undefined) {
    const BR = new Float64Array(rows * r);
    for (let i = 0; i < rows; i++) for (let j = 0; j < r; j++) for (let k = 0; k < r; k++) BR[i * r + j]! += B[i * r + k]! * f.R[k * r + j]!;
    B = BR;
  }
  const out = new Float64Array(rows * n);
  for (let i = 0; i < rows; i++) for (let j = 0; j < n; j++) {
    let v = 0;
    for (let k = 0; k < r; k++) v += B[i * r + k]! * f.A![k * n + j]!;
    out[i * n + j] = s * v;
  }
  return out;
}

/** sum_k p_k s_k B_k (R_k) A_k of one module, float64. */
export function referenceSum(updates: readonly ClientUpdate[], path: string): Float64Array {
  const total = updates.reduce((t, u) => t + u.numExamples, 0);
  let out: Float64Array | null = null;
  for (const u of updates) {
    const d = denseDelta(u.adapter, path);
    out ??= new Float64Array(d.length);
    for (let i = 0; i < d.length; i++) out[i]! += (u.numExamples / total) * d[i]!;
  }
  return out!;
}

export function frobenius(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return Math.sqrt(s);
}

export function relativeDifference(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const d = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) d[i] = x[i]! - y[i]!;
  const ref = frobenius(y);
  return ref === 0 ? frobenius(d) : frobenius(d) / ref;
}

/**
 * The float32 rounding bound of an aggregate: each factor entry of the output is rounded once
 * (relative u = 2^-24), so ||s B' A' - M||_F <= 3u sum_k p_k |s_k| ||B_k||_F ||R_k||_F ||A_k||_F
 * (first order, submultiplicativity; factor 3 covers one rounding per factor of B, R, A).
 * Returned relative to ||M||_F.
 */
export function float32Tolerance(updates: readonly ClientUpdate[], path: string): number {
  const total = updates.reduce((t, u) => t + u.numExamples, 0);
  let bound = 0;
  for (const u of updates) {
    const m = u.adapter.layout.modules.find((x) => x.path === path)!;
    const f = u.adapter.factors.get(path)!;
    bound += (u.numExamples / total) * Math.abs(m.alpha / m.rank) * frobenius(f.A!) * frobenius(f.B!) * (f.R ? frobenius(f.R) : 1);
  }
  const u32 = 2 ** -24;
  return (3 * u32 * bound * 1.01) / frobenius(referenceSum(updates, path));
}

/** numpy's SVD of a dense matrix (test/aggregation/reference/svd.py): the independent reference. */
export function numpySvd(data: ArrayLike<number>, rows: number, cols: number, rank: number): { singular: number[]; best: number[]; relative_error: number } {
  const script = fileURLToPath(new URL('./reference/svd.py', import.meta.url));
  const out = execFileSync('python3', [script], { input: JSON.stringify({ rows, cols, rank, data: Array.from(data) }), maxBuffer: 1 << 28 });
  return JSON.parse(out.toString()) as { singular: number[]; best: number[]; relative_error: number };
}

/** Sum over a module's stacked terms of |s B_ik A_kj|, [m, n] in float64: bounds |W| of any subset of its terms, element by element. */
export function stackAbsTerms(adapter: Adapter, path: string): Float64Array {
  const m = adapter.layout.modules.find((x) => x.path === path)!;
  const f = adapter.factors.get(path)!;
  const s = m.alpha / m.rank;
  const out = new Float64Array(m.outFeatures * m.inFeatures);
  for (let i = 0; i < m.outFeatures; i++) {
    for (let k = 0; k < m.rank; k++) for (let j = 0; j < m.inFeatures; j++) out[i * m.inFeatures + j]! += Math.abs(s * f.B![i * m.rank + k]! * f.A![k * m.inFeatures + j]!);
  }
  return out;
}
