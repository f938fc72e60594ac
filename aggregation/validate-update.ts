/**
 * Checks one client update against the round's reference layout before anything is added to a
 * running sum, so a refused update leaves the sum untouched ("validate at the edge", docs/architecture.md, "Conventions").
 * Every error names the update's source, the PEFT tensor and the problem.
 */
import { factorShape, peftTensorNames, type Adapter, type AdapterLayout, type AdapterModule } from '../shared/adapter.js';
import { FedloraError } from '../shared/errors.js';
import type { ClientUpdate, FactorName } from './strategy.js';

export interface UpdateRules {
  /** Factors the update must carry. */
  readonly required: readonly FactorName[];
  /** Factors checked when present (shape and finiteness) though not required (FFA's A, Fed-SB's A and B). */
  readonly optional?: readonly FactorName[];
  /** True where ranks must equal the reference's (FFA, Fed-SB: A or B are shared). */
  readonly sameRank: boolean;
  /**
   * Factors whose finiteness the caller checks itself, fused into its accumulation pass
   * (running-sum.ts StagedSum), to read each update once. @default none
   */
  readonly finiteCheckedByCaller?: readonly FactorName[];
}

/** The shape of a factor of a module: shared/adapter.ts's, re-exported for aggregation's callers. */
export { factorShape };

export function tensorName(path: string, factor: FactorName): string {
  return peftTensorNames(path)[factor];
}

/**
 * True when every value is finite: the float64 sum of float32 values is finite exactly when every
 * value is (no overflow below 10^269 terms; NaN and +-Infinity propagate, +Inf + -Inf is NaN).
 * Four independent sums break the add latency chain.
 */
export function allFinite(x: Float32Array): boolean {
  const n = x.length;
  const end = n - (n % 4);
  let z0 = 0;
  let z1 = 0;
  let z2 = 0;
  let z3 = 0;
  let i = 0;
  for (; i < end; i += 4) {
    z0 += x[i]!;
    z1 += x[i + 1]!;
    z2 += x[i + 2]!;
    z3 += x[i + 3]!;
  }
  for (; i < n; i++) z0 += x[i]!;
  return Number.isFinite(z0 + z1 + z2 + z3);
}

function refuse(source: string, message: string, details: Record<string, unknown> = {}): never {
  throw new FedloraError('FL_ERR_AGGREGATION_INPUT', `${source}: ${message}`, { source, ...details });
}

/** The refusal of a tensor holding NaN or Infinity. */
export function refuseNonFinite(source: string, path: string, factor: FactorName): never {
  const name = tensorName(path, factor);
  refuse(source, `${name} holds NaN or Infinity`, { tensor: name });
}

/** Checks the example count, the module set, shapes, ranks and finiteness of an update. */
export function checkUpdate(update: ClientUpdate, reference: AdapterLayout, rules: UpdateRules): void {
  const { source } = update;
  if (!(typeof update.numExamples === 'number' && Number.isFinite(update.numExamples) && update.numExamples > 0)) {
    refuse(source, `the number of examples (the weight) must be a finite number > 0, got ${String(update.numExamples)}`);
  }
  checkAdapterAgainst(update.adapter, reference, rules, source);
}

/** The module-level checks of checkUpdate, for an adapter from `source`. */
export function checkAdapterAgainst(adapter: Adapter, reference: AdapterLayout, rules: UpdateRules, source: string): void {
  const expected = new Map(reference.modules.map((m) => [m.path, m]));
  const got = new Map(adapter.layout.modules.map((m) => [m.path, m]));
  if (got.size !== adapter.layout.modules.length) {
    const seen = new Set<string>();
    const twice = adapter.layout.modules.find((m) => (seen.has(m.path) ? true : (seen.add(m.path), false)))!;
    refuse(source, `module '${twice.path}' is listed twice`, { tensor: tensorName(twice.path, 'A') });
  }
  for (const path of expected.keys()) {
    if (!got.has(path)) refuse(source, `module '${path}' is missing (no ${tensorName(path, rules.required[0] ?? 'A')}); the other updates have it`, { tensor: tensorName(path, 'A') });
  }
  for (const [path, m] of got) {
    const ref = expected.get(path);
    if (ref === undefined) refuse(source, `module '${path}' (${tensorName(path, 'A')}) is not in the round's layout`, { tensor: tensorName(path, 'A') });
    if (m.outFeatures !== ref.outFeatures || m.inFeatures !== ref.inFeatures) {
      refuse(source, `module '${path}' is [${m.outFeatures}, ${m.inFeatures}] but the round's layout has [${ref.outFeatures}, ${ref.inFeatures}]`, { tensor: tensorName(path, 'A') });
    }
    if (!Number.isInteger(m.rank) || m.rank < 1) refuse(source, `module '${path}': rank must be an integer >= 1, got ${m.rank}`, { tensor: tensorName(path, 'A') });
    if (rules.sameRank && m.rank !== ref.rank) {
      refuse(source, `${tensorName(path, 'A')}: rank ${m.rank} differs from the round's rank ${ref.rank}; this strategy shares frozen factors, so ranks must agree`, { tensor: tensorName(path, 'A') });
    }
    if (!(Number.isFinite(m.alpha) && m.alpha !== 0)) refuse(source, `module '${path}': lora alpha must be finite and non-zero, got ${m.alpha}`, { tensor: tensorName(path, 'A') });
    const factors = adapter.factors.get(path);
    const checkFactor = (factor: FactorName, mustExist: boolean): void => {
      const data = factors?.[factor];
      const name = tensorName(path, factor);
      if (data === undefined) {
        if (mustExist) refuse(source, `${name} is missing`, { tensor: name });
        return;
      }
      const [rows, cols] = factorShape(m, factor);
      if (data.length !== rows * cols) refuse(source, `${name} has ${data.length} values, expected [${rows}, ${cols}] = ${rows * cols}`, { tensor: name });
      if (!rules.finiteCheckedByCaller?.includes(factor) && !allFinite(data)) refuseNonFinite(source, path, factor);
    };
    for (const f of rules.required) checkFactor(f, true);
    for (const f of rules.optional ?? []) checkFactor(f, false);
  }
}

/**
 * Checks a job spec once at init: unique paths, positive integer sizes and ranks, finite non-zero
 * alpha. Rules of one strategy stay in its own file (fedsb.ts checkRankFits: rank <= min(m, n)),
 * so this file names no strategy (issue 14; docs/strategies.md).
 */
export function checkJobSpec(strategy: string, modules: readonly AdapterModule[]): void {
  const bad = (message: string): never => {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `${strategy}: ${message}`);
  };
  if (modules.length === 0) bad('the job spec names no modules');
  const seen = new Set<string>();
  for (const m of modules) {
    if (seen.has(m.path)) bad(`module '${m.path}' appears twice in the job spec`);
    seen.add(m.path);
    for (const [field, v] of [['outFeatures', m.outFeatures], ['inFeatures', m.inFeatures], ['rank', m.rank]] as const) {
      if (!Number.isInteger(v) || v < 1) bad(`module '${m.path}': ${field} must be an integer >= 1, got ${v}`);
    }
    if (!(Number.isFinite(m.alpha) && m.alpha !== 0)) bad(`module '${m.path}': alpha must be finite and non-zero, got ${m.alpha}`);
  }
}
