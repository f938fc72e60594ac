/**
 * The trainable tensors of an adapter as flat vectors, and the step from an already-summed delta to
 * the next global state: the two hooks wrappers need (DP-FedAvg clips and noises these vectors;
 * secure aggregation masks and sums them). Shared by every strategy whose aggregate is a sum.
 */
import type { Adapter, ModuleFactors } from '../shared/adapter.js';
import { FedloraError } from '../shared/errors.js';
import type { FactorName, GlobalState, RoundResult, StrategyName, SummedDelta, TrainableVector } from './strategy.js';
import { factorShape, tensorName } from './validate-update.js';

/** The `factors` of each module of `adapter`, in module order then factor order (views, not copies). */
export function trainableVectorsOf(adapter: Adapter, factors: readonly FactorName[], source = 'adapter'): TrainableVector[] {
  const out: TrainableVector[] = [];
  for (const module of adapter.layout.modules) {
    const f = adapter.factors.get(module.path);
    for (const factor of factors) {
      const data = f?.[factor];
      const name = tensorName(module.path, factor);
      if (data === undefined) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', `${source}: ${name} is missing`, { source, tensor: name });
      const [rows, cols] = factorShape(module, factor);
      if (data.length !== rows * cols) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', `${source}: ${name} has ${data.length} values, expected ${rows * cols}`, { source, tensor: name });
      out.push({ path: module.path, factor, tensorName: name, data });
    }
  }
  return out;
}

/**
 * The next state when the round's aggregate is global + sum / count on the trainable factors
 * (the frozen ones are copied by reference from the global adapter, which is never mutated).
 * @param sums one entry per trainable vector of the global adapter, same order or not
 * @param count the divisor (clients in the round); finite and > 0
 */
export function applySummedDeltas(strategy: StrategyName, state: GlobalState, factors: readonly FactorName[], sums: readonly SummedDelta[], count: number): RoundResult {
  const global = state.adapter;
  if (global === null) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', `${strategy}: aggregating summed deltas needs a global state with an adapter`);
  if (!(Number.isFinite(count) && count > 0)) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', `${strategy}: the number of clients must be > 0, got ${count}`);
  const byKey = new Map(sums.map((s) => [`${s.path}\0${s.factor}`, s]));
  if (byKey.size !== sums.length) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', `${strategy}: summed deltas name a tensor twice`);
  const factorsOut = new Map<string, ModuleFactors>();
  let used = 0;
  for (const v of trainableVectorsOf(global, factors, 'global state')) {
    const sum = byKey.get(`${v.path}\0${v.factor}`);
    if (sum === undefined) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', `${strategy}: no summed delta for ${v.tensorName}`, { tensor: v.tensorName });
    if (sum.data.length !== v.data.length) {
      throw new FedloraError('FL_ERR_AGGREGATION_INPUT', `${strategy}: summed delta of ${v.tensorName} has ${sum.data.length} values, expected ${v.data.length}`, { tensor: v.tensorName });
    }
    used++;
    const next = new Float32Array(v.data.length);
    for (let i = 0; i < next.length; i++) next[i] = v.data[i]! + sum.data[i]! / count;
    const prev = factorsOut.get(v.path) ?? { ...global.factors.get(v.path) };
    factorsOut.set(v.path, { ...prev, [v.factor]: next });
  }
  if (used !== sums.length) throw new FedloraError('FL_ERR_AGGREGATION_INPUT', `${strategy}: summed deltas name tensors that are not trainable in the global adapter`);
  for (const m of global.layout.modules) if (!factorsOut.has(m.path)) factorsOut.set(m.path, { ...global.factors.get(m.path) });
  const aggregate: Adapter = { layout: global.layout, factors: factorsOut };
  return {
    state: { ...state, round: state.round + 1, adapter: aggregate, lastRoundUpdate: null },
    aggregate,
    report: { strategy, clients: count },
  };
}
