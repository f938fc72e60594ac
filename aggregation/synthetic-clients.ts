/**
 * Seeded synthetic client updates for the demo and the benchmark: what clients would send after
 * local training, shaped by the strategy's own plan (ranks, trainable factors, frozen factors from
 * the global state). Values are uniform in [-scale, scale) from the specified generator.
 */
import type { ModuleFactors } from '../shared/adapter.js';
import { SeededRandom } from './seeded-random.js';
import type { ClientUpdate, GlobalState, Strategy } from './strategy.js';

export interface SyntheticClient {
  readonly id: string;
  /** n_k */
  readonly numExamples: number;
  /** The client's rank where the strategy lets clients choose (flora; fedavg pads). */
  readonly rank?: number;
}

/**
 * One client's update: the global adapter's frozen factors, fresh seeded values for the trainable ones.
 * @param scale half-width of the uniform values @default 0.1
 */
export function syntheticUpdate(strategy: Strategy, state: GlobalState, client: SyntheticClient, scale = 0.1): ClientUpdate {
  const rng = SeededRandom.fromSeed('fedlora/synthetic-client/v1', state.seed, client.id);
  const [plan] = strategy.plan(state, [{ id: client.id, rank: client.rank }]);
  const factors = new Map<string, ModuleFactors>();
  for (const m of plan!.modules) {
    const global = state.adapter?.factors.get(m.path);
    const fresh = (len: number): Float32Array => rng.uniformArray(len, scale);
    const keep = (f: 'A' | 'B' | 'R', len: number): Float32Array => (plan!.trainable.includes(f) || global?.[f] === undefined ? fresh(len) : global[f]);
    factors.set(m.path, {
      A: keep('A', m.rank * m.inFeatures),
      B: keep('B', m.outFeatures * m.rank),
      ...(strategy.variant === 'fedsb' && { R: keep('R', m.rank * m.rank) }),
    });
  }
  return { adapter: { layout: { variant: strategy.variant, modules: plan!.modules, baseModelName: state.spec.baseModelName }, factors }, numExamples: client.numExamples, source: client.id };
}
