import { describe, expect, it } from 'vitest';
import { privacyArgumentError, requireCount, requireNonNegative, requireOpenUnit, requirePositive, requireRate } from '../../privacy/argument-checks.js';
import { FedloraError } from '../../shared/errors.js';

function thrown(fn: () => void): FedloraError {
  try {
    fn();
  } catch (e) {
    if (e instanceof FedloraError) return e;
    throw e;
  }
  throw new Error('expected a FedloraError');
}

describe('privacy argument checks', () => {
  it('name the parameter, the rule, the value and the config field', () => {
    const e = thrown(() => requirePositive(-1, 'clipNorm', 'privacy.clipNorm'));
    expect(e.code).toBe('FL_ERR_PRIVACY_ARGUMENT');
    expect(e.message).toBe('FL_ERR_PRIVACY_ARGUMENT: clipNorm must be a finite number > 0, got -1 (privacy.clipNorm)');
    expect(e.details).toEqual({ parameter: 'clipNorm', value: -1, field: 'privacy.clipNorm' });
  });

  it('accept exactly their ranges', () => {
    const cases: [(v: number, n: string) => void, number[], number[]][] = [
      [requirePositive, [1e-300, 1, 1e300], [0, -1, Number.NaN, Infinity]],
      [requireNonNegative, [0, 2], [-1e-300, Number.NaN, Infinity]],
      [requireRate, [1e-9, 0.5, 1], [0, 1.0000001, Number.NaN]],
      [requireOpenUnit, [1e-9, 0.999], [0, 1, Number.NaN]],
      [requireCount, [0, 7, 2 ** 53 - 1], [-1, 1.5, 2 ** 53, Number.NaN]],
    ];
    for (const [check, good, bad] of cases) {
      for (const v of good) expect(() => check(v, 'x')).not.toThrow();
      for (const v of bad) expect(thrown(() => check(v, 'x')).code).toBe('FL_ERR_PRIVACY_ARGUMENT');
    }
    expect(thrown(() => requirePositive('3' as unknown as number, 'x')).message).toMatch(/x must be a finite number > 0, got 3/);
  });

  it('privacyArgumentError states a custom rule', () => {
    expect(thrown(() => privacyArgumentError('maxNorms', 'one bound per vector (2)', '1 bounds')).message).toBe(
      'FL_ERR_PRIVACY_ARGUMENT: maxNorms must be one bound per vector (2), got 1 bounds',
    );
  });
});
