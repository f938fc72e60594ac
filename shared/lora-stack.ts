/**
 * FLoRA's stacks as plain adapters (docs/strategies.md, "flora"), shared by the coordinator, which builds
 * them (aggregation/flora.ts), and the client, which keeps the rounds it has merged and appends
 * what an offer adds (client/agent/flora-merged.ts).
 *
 * A stacked module is one low-rank term s B A with A [K, n] and B [m, K]: the rows of A and the
 * columns of B are the concatenation of every term's factors, so a contiguous range of them is
 * itself the sum of the terms in that range (with the same s). The terms of FLoRA's accumulated
 * adapter are its rounds in order, so the rounds a client lacks are a range of rows and columns.
 */
import type { Adapter, AdapterModule, ModuleFactors } from './adapter.js';
import { scaling } from './adapter.js';
import { FedloraError } from './errors.js';

/** One low-rank term coef * B @ A to stack; A [rank, n], B [m, rank]. */
export interface StackPart {
  readonly A: Float32Array;
  readonly B: Float32Array;
  readonly rank: number;
  /** The term's full factor: the stacked adapter's s times its A rows' multiplier. */
  readonly coef: number;
}

/**
 * Concatenates terms into one adapter module: A rows fround((coef_k / s) A_k), B columns B_k, so
 * s B_stack A_stack = sum_k coef_k B_k A_k. Rows with coef_k = s are copied exactly.
 */
export function stackParts(parts: readonly StackPart[], m: number, n: number, s: number): { A: Float32Array; B: Float32Array; rank: number } {
  const rank = parts.reduce((t, p) => t + p.rank, 0);
  const A = new Float32Array(rank * n);
  const B = new Float32Array(m * rank);
  let offset = 0;
  for (const p of parts) {
    const c = p.coef / s;
    const base = offset * n;
    if (c === 1) A.set(p.A.subarray(0, p.rank * n), base);
    else for (let i = 0; i < p.rank * n; i++) A[base + i] = c * p.A[i]!;
    for (let row = 0; row < m; row++) B.set(p.B.subarray(row * p.rank, (row + 1) * p.rank), row * rank + offset);
    offset += p.rank;
  }
  return { A, B, rank };
}

/** The common scaling of terms, or 1 when they differ. */
export function commonScale(scales: readonly number[]): number {
  return scales.every((v) => v === scales[0]) ? scales[0]! : 1;
}

/** The sum of two adapters with the same modules as one adapter: the concatenation of their factors. */
export function concatenateAdapters(first: Adapter, second: Adapter): Adapter {
  const modules: AdapterModule[] = [];
  const factors = new Map<string, ModuleFactors>();
  for (const m2 of second.layout.modules) {
    const m1 = first.layout.modules.find((x) => x.path === m2.path);
    const f1 = first.factors.get(m2.path);
    const f2 = second.factors.get(m2.path)!;
    if (m1 === undefined || f1?.A === undefined || f1.B === undefined || m1.outFeatures !== m2.outFeatures || m1.inFeatures !== m2.inFeatures) {
      throw new FedloraError('FL_ERR_AGGREGATION_INPUT', `flora: module '${m2.path}' of the round does not match the accumulated adapter`);
    }
    const s = commonScale([scaling(m1), scaling(m2)]);
    const stacked = stackParts(
      [
        { A: f1.A, B: f1.B, rank: m1.rank, coef: scaling(m1) },
        { A: f2.A!, B: f2.B!, rank: m2.rank, coef: scaling(m2) },
      ],
      m2.outFeatures,
      m2.inFeatures,
      s,
    );
    modules.push({ ...m2, rank: stacked.rank, alpha: s * stacked.rank });
    factors.set(m2.path, { A: stacked.A, B: stacked.B });
  }
  return { layout: { ...second.layout, modules }, factors };
}

/**
 * Rows [from, to) of every module's A and columns [from, to) of its B, with the module's scaling
 * kept: the sum of the terms stacked at those ranks. Per module, since ranks may differ.
 * @param ranges per module path, the [from, to) rank range to keep (0 <= from <= to <= rank)
 * @returns null when every range is empty
 */
export function sliceStack(adapter: Adapter, ranges: ReadonlyMap<string, readonly [number, number]>): Adapter | null {
  const modules: AdapterModule[] = [];
  const factors = new Map<string, ModuleFactors>();
  for (const m of adapter.layout.modules) {
    const range = ranges.get(m.path);
    const f = adapter.factors.get(m.path);
    if (range === undefined || f?.A === undefined || f.B === undefined) throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `flora: no rank range or factors for module '${m.path}'`);
    const [from, to] = range;
    if (!(Number.isInteger(from) && Number.isInteger(to) && from >= 0 && from <= to && to <= m.rank)) {
      throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `flora: rank range [${from}, ${to}) of module '${m.path}' is outside its rank ${m.rank}`);
    }
    const k = to - from;
    if (k === 0) continue;
    const n = m.inFeatures;
    const A = f.A.slice(from * n, to * n);
    const B = new Float32Array(m.outFeatures * k);
    for (let row = 0; row < m.outFeatures; row++) B.set(f.B.subarray(row * m.rank + from, row * m.rank + to), row * k);
    modules.push({ ...m, rank: k, alpha: scaling(m) * k });
    factors.set(m.path, { A, B });
  }
  return modules.length === 0 ? null : { layout: { ...adapter.layout, modules }, factors };
}
