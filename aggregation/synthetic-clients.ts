/**
 * Seeded synthetic client updates for the demo: what clients would send after local training,
 * shaped by the strategy's own plan (ranks, trainable factors, frozen factors from the global
 * state). Clients that learn from related data move in related directions, so each trainable
 * factor is a part common to every client plus a client's own part:
 *   X_k = scale * (common + spread * own_k),   common and own_k uniform in [-1, 1) (seeded),
 * where column c of a common B (row c of a common A) is the same for every rank, so clients of
 * different ranks share their leading directions.
 */
import type { ModuleFactors } from '../shared/adapter.js';
import { SeededRandom } from './seeded-random.js';
import type { ClientUpdate, FactorName, GlobalState, Strategy } from './strategy.js';

export interface SyntheticClient {
  readonly id: string;
  /** n_k */
  readonly numExamples: number;
  /** The client's rank where the strategy lets clients choose (flora; fedavg pads). */
  readonly rank?: number;
}

export interface SyntheticOptions {
  /** Overall magnitude. @default 0.1 */
  readonly scale?: number;
  /** Weight of each client's own part against the common part. @default 0.3 */
  readonly spread?: number;
}

/** The common part of a factor [rows, cols]; `byColumn` draws column by column (B), else row by row (A, R). */
function commonPart(seed: string, path: string, factor: FactorName, rows: number, cols: number, byColumn: boolean): Float64Array {
  const out = new Float64Array(rows * cols);
  const lines = byColumn ? cols : rows;
  const length = byColumn ? rows : cols;
  for (let l = 0; l < lines; l++) {
    const rng = SeededRandom.fromSeed('fedlora/synthetic-common/v1', seed, path, factor, String(l));
    for (let t = 0; t < length; t++) out[byColumn ? t * cols + l : l * cols + t] = rng.nextSymmetric(1);
  }
  return out;
}

/** One client's update: the global adapter's frozen factors, seeded values for the trainable ones. */
export function syntheticUpdate(strategy: Strategy, state: GlobalState, client: SyntheticClient, options: SyntheticOptions = {}): ClientUpdate {
  const scale = options.scale ?? 0.1;
  const spread = options.spread ?? 0.3;
  const own = SeededRandom.fromSeed('fedlora/synthetic-client/v1', state.seed, client.id);
  const [plan] = strategy.plan(state, [{ id: client.id, rank: client.rank }]);
  const factors = new Map<string, ModuleFactors>();
  for (const m of plan!.modules) {
    const global = state.adapter?.factors.get(m.path);
    const make = (f: FactorName, rows: number, cols: number): Float32Array => {
      if (!plan!.trainable.includes(f) && global?.[f] !== undefined) return global[f];
      const common = commonPart(state.seed, m.path, f, rows, cols, f === 'B');
      return Float32Array.from(common, (c) => scale * (c + spread * own.nextSymmetric(1)));
    };
    factors.set(m.path, {
      A: make('A', m.rank, m.inFeatures),
      B: make('B', m.outFeatures, m.rank),
      ...(strategy.variant === 'fedsb' && { R: make('R', m.rank, m.rank) }),
    });
  }
  return { adapter: { layout: { variant: strategy.variant, modules: plan!.modules, baseModelName: state.spec.baseModelName }, factors }, numExamples: client.numExamples, source: client.id };
}
