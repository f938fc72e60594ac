import { describe, expect, it } from 'vitest';
import { createStrategy, isStrategyName, STRATEGY_NAMES } from '../../aggregation/registry.js';
import { isFedloraError } from '../../shared/errors.js';

describe('strategy registry', () => {
  it('registers the four strategies of docs/strategies.md, each under its own name', () => {
    expect([...STRATEGY_NAMES]).toEqual(['fedavg', 'flora', 'ffa', 'fedsb']);
    for (const name of STRATEGY_NAMES) expect(createStrategy(name).name).toBe(name);
  });

  it('marks the sums: fedavg, ffa and fedsb can be wrapped, flora cannot', () => {
    expect(STRATEGY_NAMES.filter((n) => createStrategy(n).aggregateIsSum)).toEqual(['fedavg', 'ffa', 'fedsb']);
  });

  it('refuses an unknown name with FL_ERR_UNKNOWN_STRATEGY listing the registered ones', () => {
    expect(isStrategyName('fedprox')).toBe(false);
    try {
      createStrategy('fedprox');
      expect.unreachable();
    } catch (e) {
      expect(isFedloraError(e, 'FL_ERR_UNKNOWN_STRATEGY')).toBe(true);
      expect(String(e)).toContain("no strategy 'fedprox'; registered: fedavg, flora, ffa, fedsb");
    }
  });

  it('refuses a bad fedavg sketch size', () => {
    expect(() => createStrategy('fedavg', { fedavg: { sketchColumns: 0 } })).toThrow(/sketchColumns/);
  });
});
