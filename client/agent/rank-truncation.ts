/**
 * HetLoRA-style rank truncation for FedAvg with heterogeneous ranks: the global adapter is
 * zero-padded to the largest client rank r_max (aggregation/fedavg.ts), and a client of rank r < r_max
 * starts from its leading r components: A's first r rows and B's first r columns.
 * The scaling changes with the rank (s = alpha / r), so B is rescaled by s_global / s_client to keep
 * the client's starting update s_client B_r A_r equal to the truncated global s_global B_r A_r.
 */
import { scaling, type Adapter, type AdapterModule, type ModuleFactors } from '../../shared/adapter.js';
import { FedloraError } from '../../shared/errors.js';

/** The plan's rank and alpha of one module. */
export interface PlannedModule {
  readonly path: string;
  readonly rank: number;
  readonly alpha: number;
}

/**
 * The global LoRA adapter cut to each planned module's rank (modules already at the planned rank
 * are passed through unchanged). Never mutates `state`.
 * @throws FL_ERR_ADAPTER_LAYOUT when a planned rank exceeds the state's, or a factor is missing
 */
export function truncateToPlannedRanks(state: Adapter, planned: readonly PlannedModule[]): Adapter {
  const byPath = new Map(planned.map((m) => [m.path, m]));
  const modules: AdapterModule[] = [];
  const factors = new Map<string, ModuleFactors>();
  for (const m of state.layout.modules) {
    const plan = byPath.get(m.path);
    const f = state.factors.get(m.path);
    if (plan === undefined || f === undefined || plan.rank === m.rank) {
      modules.push(m);
      if (f !== undefined) factors.set(m.path, f);
      continue;
    }
    if (plan.rank > m.rank) {
      throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `module '${m.path}': the plan's rank ${plan.rank} exceeds the global adapter's rank ${m.rank}`);
    }
    if (f.A === undefined || f.B === undefined) {
      throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `module '${m.path}': the global adapter lacks A or B to truncate`);
    }
    const r = plan.rank;
    const target: AdapterModule = { ...m, rank: r, alpha: plan.alpha };
    const rescale = scaling(m) / scaling(target);
    const A = f.A.slice(0, r * m.inFeatures);
    const B = new Float32Array(m.outFeatures * r);
    for (let i = 0; i < m.outFeatures; i++) {
      for (let k = 0; k < r; k++) B[i * r + k] = f.B[i * m.rank + k]! * rescale;
    }
    modules.push(target);
    factors.set(m.path, { A, B });
  }
  return { layout: { ...state.layout, modules }, factors };
}
