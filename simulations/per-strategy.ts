/**
 * Options that may differ per strategy, as the papers tune them (FFA-LoRA a larger learning rate
 * since only B trains; Fed-SB a larger rank since it sends r^2): `0.01`, or
 * `0.01,ffa=0.05,fedsb=0.05` (a default and overrides), or `fedsb=16` (overrides only).
 */
import { FedloraError } from '../shared/errors.js';
import { STRATEGY_NAMES, type StrategyName } from '../shared/protocol/job-spec.js';

export interface PerStrategy {
  readonly value: number;
  readonly overrides: Readonly<Partial<Record<StrategyName, number>>>;
}

/** The value for one strategy. */
export function forStrategy(p: PerStrategy, strategy: StrategyName): number {
  return p.overrides[strategy] ?? p.value;
}

/**
 * Parses `X[,name=Y...]`.
 * @param fallback the value when the text gives no default
 * @param valid the rule a value must meet, and its wording for the error
 */
export function parsePerStrategy(option: string, text: string, fallback: number, valid: { test: (v: number) => boolean; rule: string }): PerStrategy {
  let value = fallback;
  const overrides: Partial<Record<StrategyName, number>> = {};
  const check = (s: string): number => {
    const v = Number(s);
    if (s.trim() === '' || !valid.test(v)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--${option} values must be ${valid.rule}, got '${s}' in '${text}'`, { option });
    return v;
  };
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) {
      value = check(part);
      continue;
    }
    const name = part.slice(0, eq).trim();
    if (!(STRATEGY_NAMES as readonly string[]).includes(name)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--${option}: '${name}' is not a strategy (${STRATEGY_NAMES.join(', ')})`, { option });
    overrides[name as StrategyName] = check(part.slice(eq + 1));
  }
  return { value, overrides };
}

/** For reports: `0.01` or `{"value": 0.01, "ffa": 0.05}`. */
export function describePerStrategy(p: PerStrategy): number | Record<string, number> {
  return Object.keys(p.overrides).length === 0 ? p.value : { value: p.value, ...p.overrides };
}
