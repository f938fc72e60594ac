/**
 * The registry of strategies: the only place that switches on a strategy's name (docs/architecture.md, "Conventions").
 * Adding a strategy = one file + one entry in STRATEGY_NAMES + one case below; the `never` check
 * makes the compiler point at this switch when a name has no case.
 */
import { FedloraError } from '../shared/errors.js';
import { FedAvgStrategy, type FedAvgOptions } from './fedavg.js';
import { FedSbStrategy } from './fedsb.js';
import { FfaStrategy } from './ffa.js';
import { FloraStrategy } from './flora.js';
import type { Strategy, StrategyName } from './strategy.js';

export const STRATEGY_NAMES: readonly StrategyName[] = ['fedavg', 'flora', 'ffa', 'fedsb'];

/** Options of the strategies that take any, keyed by strategy. */
export interface StrategyOptions {
  readonly fedavg?: FedAvgOptions;
}

export function isStrategyName(name: string): name is StrategyName {
  return (STRATEGY_NAMES as readonly string[]).includes(name);
}

/**
 * The strategy registered under `name`.
 * @throws FL_ERR_UNKNOWN_STRATEGY naming the registered ones
 */
export function createStrategy(name: string, options: StrategyOptions = {}): Strategy {
  if (!isStrategyName(name)) {
    throw new FedloraError('FL_ERR_UNKNOWN_STRATEGY', `no strategy '${name}'; registered: ${STRATEGY_NAMES.join(', ')}`, { strategy: name });
  }
  switch (name) {
    case 'fedavg':
      return new FedAvgStrategy(options.fedavg);
    case 'flora':
      return new FloraStrategy();
    case 'ffa':
      return new FfaStrategy();
    case 'fedsb':
      return new FedSbStrategy();
    default: {
      const _: never = name;
      throw new FedloraError('FL_ERR_UNKNOWN_STRATEGY', `no strategy '${String(_)}'`);
    }
  }
}
