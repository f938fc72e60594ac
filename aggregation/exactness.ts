/**
 * How far an aggregate's update is from the exact weighted sum of the clients' updates:
 * ||s B (R) A - sum_k p_k s_k B_k (R_k) A_k||_F / ||sum_k p_k s_k B_k (R_k) A_k||_F, per module and
 * overall. For fedavg it is the aggregation noise; for flora, ffa and fedsb it should be float32
 * rounding (~1e-8 to 1e-7). Small modules (m n <= 2^22) are compared densely in float64; larger ones
 * by Gram traces (low-rank.ts) without forming m x n products, which cancels catastrophically below
 * ~sqrt(2^-52) = 1.5e-8 relative: there a figure under ~3e-8 means "at the float64 floor".
 * Keeps every update, so it is for checks and the demo, not for streaming rounds.
 */
import type { Adapter, AdapterModule, ModuleFactors } from '../shared/adapter.js';
import { scaling } from '../shared/adapter.js';
import { FedloraError } from '../shared/errors.js';
import { productGram, quadraticForm, type LowRankTerm } from './low-rank.js';

export interface ProductGap {
  readonly overall: number;
  readonly perModule: Readonly<Record<string, number>>;
}

/** B R in float64 when R is present (Fed-SB), else B itself. */
function effectiveB(module: AdapterModule, f: ModuleFactors): Float32Array | Float64Array {
  if (f.R === undefined) return f.B!;
  const { outFeatures: m, rank: r } = module;
  const out = new Float64Array(m * r);
  for (let i = 0; i < m; i++) for (let k = 0; k < r; k++) {
    const b = f.B![i * r + k]!;
    for (let j = 0; j < r; j++) out[i * r + j]! += b * f.R[k * r + j]!;
  }
  return out;
}

const DENSE_LIMIT = 2 ** 22;

/** Squared norms of sum_i c_i B_i A_i (gap) and of the terms after the first (ref), by Gram traces. */
function gramNorms(terms: readonly LowRankTerm[], m: number, n: number): { gap: number; ref: number } {
  const G = productGram(terms, m, n);
  const coefs = terms.map((t) => t.coef);
  return { gap: quadraticForm(G, coefs), ref: quadraticForm(G, coefs, (i) => i > 0) };
}

/** The same squared norms from dense float64 m x n sums (accurate to ~1e-16 relative). */
function denseNorms(terms: readonly LowRankTerm[], m: number, n: number): { gap: number; ref: number } {
  const rest = new Float64Array(m * n);
  const first = new Float64Array(m * n);
  terms.forEach((t, index) => {
    const out = index === 0 ? first : rest;
    for (let i = 0; i < m; i++) {
      const row = i * n;
      for (let c = 0; c < t.rank; c++) {
        const b = t.coef * t.B[i * t.rank + c]!;
        if (b === 0) continue;
        const a = c * n;
        for (let j = 0; j < n; j++) out[row + j]! += b * t.A[a + j]!;
      }
    }
  });
  let gap = 0;
  let ref = 0;
  for (let i = 0; i < rest.length; i++) {
    gap += (first[i]! + rest[i]!) ** 2;
    ref += rest[i]! ** 2;
  }
  return { gap, ref };
}

/**
 * The relative Frobenius gap between the aggregate's update and the exact weighted sum.
 * @param clients the updates with their weights n_k (p_k = n_k / sum n_j)
 */
export function productGap(aggregate: Adapter, clients: ReadonlyArray<{ readonly adapter: Adapter; readonly numExamples: number }>): ProductGap {
  const total = clients.reduce((t, c) => t + c.numExamples, 0);
  const perModule: Record<string, number> = {};
  let gapSq = 0;
  let refSq = 0;
  for (const m of aggregate.layout.modules) {
    const terms: LowRankTerm[] = [{ B: effectiveB(m, aggregate.factors.get(m.path)!), A: aggregate.factors.get(m.path)!.A!, rank: m.rank, coef: scaling(m) }];
    for (const c of clients) {
      const cm = c.adapter.layout.modules.find((x) => x.path === m.path);
      const f = c.adapter.factors.get(m.path);
      if (cm === undefined || f === undefined) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', `productGap: a client lacks module '${m.path}'`);
      terms.push({ B: effectiveB(cm, f), A: f.A!, rank: cm.rank, coef: (-c.numExamples / total) * scaling(cm) });
    }
    const { gap, ref } = m.outFeatures * m.inFeatures <= DENSE_LIMIT ? denseNorms(terms, m.outFeatures, m.inFeatures) : gramNorms(terms, m.outFeatures, m.inFeatures);
    perModule[m.path] = ref === 0 ? Math.sqrt(gap) : Math.sqrt(gap / ref);
    gapSq += gap;
    refSq += ref;
  }
  return { overall: refSq === 0 ? Math.sqrt(gapSq) : Math.sqrt(gapSq / refSq), perModule };
}
