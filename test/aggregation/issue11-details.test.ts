/**
 * Issue 11 item 5: FedAvg never trains a client silently at the job's rank when it asked for more,
 * and Fed-SB's init step is the first step's learning rate (lr / warmupSteps under warmup), as
 * LoRA-SB takes it; checked against numpy (sign step and truncated SVD).
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { createStrategy } from '../../aggregation/registry.js';
import { FedSbGradientSum, fedsbInitStep } from '../../aggregation/fedsb-init.js';
import { isFedloraError } from '../../shared/errors.js';
import { moduleSpec } from './fixtures.js';

describe('issue 11: aggregation details', () => {
  it('fedavg refuses a client asking for a rank above the job rank, and honours smaller ones', () => {
    const fedavg = createStrategy('fedavg');
    const state = fedavg.init({ modules: [moduleSpec('m.q', 6, 5, 4)] }, 's');
    expect(fedavg.plan(state, [{ id: 'a', rank: 2 }, { id: 'b', rank: 4 }]).map((p) => p.modules[0]!.rank)).toEqual([2, 4]);
    try {
      fedavg.plan(state, [{ id: 'a', rank: 2 }, { id: 'c', rank: 8 }]);
      expect.unreachable();
    } catch (e) {
      expect(isFedloraError(e, 'FL_ERR_AGGREGATION_INPUT')).toBe(true);
      expect(String(e)).toMatch(/client 'c' asks for rank 8, above the job's rank 4/);
    }
  });

  it('fedsb init: eta = lr / warmupSteps (LoRA-SB), so R0 = S of the SVD of eta sign(G), against numpy', () => {
    expect(fedsbInitStep({ lr: 0.01, warmupSteps: 0 })).toBe(0.01);
    expect(fedsbInitStep({ lr: 0.01, warmupSteps: 20 })).toBe(0.0005);
    const spec = { modules: [moduleSpec('m.q', 6, 5, 2)] };
    const g = Float32Array.from({ length: 30 }, (_, i) => Math.sin(i * 1.7) + 0.1);
    const sum = new FedSbGradientSum(spec, 's', fedsbInitStep({ lr: 0.01, warmupSteps: 20 }));
    sum.addSum(new Map([['m.q', g]]), 'test', 1);
    const r0 = sum.finish().state.adapter!.factors.get('m.q')!.R!;
    const py = spawnSync('python3', ['-c', 'import json,sys,numpy as np; g=np.array(json.load(sys.stdin)).reshape(6,5); s=np.linalg.svd(-0.0005*np.sign(g), compute_uv=False); print(json.dumps(s[:2].tolist()))'], { input: JSON.stringify([...g]), encoding: 'utf8' });
    expect(py.status).toBe(0);
    const singular = JSON.parse(py.stdout) as number[];
    // R0 is diag(S): the first two singular values of eta sign(G); with eta = lr they would be 20x larger
    expect(Math.abs(r0[0]! - singular[0]!) / singular[0]!).toBeLessThan(1e-5);
    expect(Math.abs(r0[3]! - singular[1]!) / singular[1]!).toBeLessThan(1e-5);
    expect(Math.abs(r0[1]!)).toBeLessThan(1e-9);
  });
});
