import { describe, expect, it } from 'vitest';
import type { Adapter } from '../../shared/adapter.js';
import { isFedloraError } from '../../shared/errors.js';
import { truncateToPlannedRanks } from '../../client/agent/rank-truncation.js';

const m = 3;
const n = 2;
// Global adapter at r_max = 3, alpha 6 (s = 2), values i + 1 so every entry is distinct.
const A = Float32Array.from({ length: 3 * n }, (_, i) => i + 1);
const B = Float32Array.from({ length: m * 3 }, (_, i) => 10 * (i + 1));
const state: Adapter = {
  layout: { variant: 'lora', modules: [{ path: 'layers.0', outFeatures: m, inFeatures: n, rank: 3, alpha: 6 }] },
  factors: new Map([['layers.0', { A, B }]]),
};

/** s * B[:, :r] @ A[:r] in float64, by hand loops. */
function product(Bm: Float32Array, Am: Float32Array, rank: number, stride: number, s: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let acc = 0;
    for (let k = 0; k < rank; k++) acc += Bm[i * stride + k]! * Am[k * n + j]!;
    out.push(s * acc);
  }
  return out;
}

describe('HetLoRA truncation of the FedAvg global adapter to a client rank', () => {
  it('keeps the leading r rows of A and columns of B, and the truncated update s B_r A_r', () => {
    const cut = truncateToPlannedRanks(state, [{ path: 'layers.0', rank: 2, alpha: 2 }]);
    const mod = cut.layout.modules[0]!;
    expect(mod).toMatchObject({ rank: 2, alpha: 2 });
    const f = cut.factors.get('layers.0')!;
    expect(Array.from(f.A!)).toEqual([1, 2, 3, 4]);
    // s_global / s_client = 2 / 1: B's first two columns, doubled.
    expect(Array.from(f.B!)).toEqual([20, 40, 80, 100, 140, 160]);
    expect(product(f.B!, f.A!, 2, 2, 1)).toEqual(product(B, A, 2, 3, 2));
    expect(Array.from(A)).toEqual([1, 2, 3, 4, 5, 6]); // input untouched
  });

  it('passes a module at the planned rank through, and refuses a rank above the global one', () => {
    expect(truncateToPlannedRanks(state, [{ path: 'layers.0', rank: 3, alpha: 6 }]).factors.get('layers.0')!.A).toBe(A);
    let error: unknown;
    try {
      truncateToPlannedRanks(state, [{ path: 'layers.0', rank: 4, alpha: 4 }]);
    } catch (e) {
      error = e;
    }
    expect(isFedloraError(error, 'FL_ERR_ADAPTER_LAYOUT')).toBe(true);
  });
});
