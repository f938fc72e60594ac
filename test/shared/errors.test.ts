import { describe, expect, it } from 'vitest';
import { ERROR_CODES, FedloraError, isFedloraError } from '../../shared/errors.js';

describe('error table', () => {
  it('every code is FL_ERR_ upper snake case with a description', () => {
    for (const [code, description] of Object.entries(ERROR_CODES)) {
      expect(code).toMatch(/^FL_ERR_[A-Z0-9_]+$/);
      expect(description.length).toBeGreaterThan(10);
    }
  });

  it('descriptions are distinct, so a code says one thing', () => {
    const descriptions = Object.values(ERROR_CODES);
    expect(new Set(descriptions).size).toBe(descriptions.length);
  });

  it('FedloraError carries its code in the message and as a field', () => {
    const e = new FedloraError('FL_ERR_INVALID_ARGUMENT', "rank must be > 0, got -1 (rank)", { field: 'rank' });
    expect(e.message).toBe('FL_ERR_INVALID_ARGUMENT: rank must be > 0, got -1 (rank)');
    expect(isFedloraError(e, 'FL_ERR_INVALID_ARGUMENT')).toBe(true);
    expect(isFedloraError(e, 'FL_ERR_IO')).toBe(false);
    expect(isFedloraError(new Error('x'))).toBe(false);
  });
});
