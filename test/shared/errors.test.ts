import { describe, expect, it } from 'vitest';
import { ERROR_CODES, FedloraError, isFedloraError, reasonOf } from '../../shared/errors.js';

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

  it('reason is the message without the code prefix', () => {
    const e = new FedloraError('FL_ERR_IO', 'cannot read a.json: EACCES (FL_ERR_IO: in the text stays)');
    expect(e.reason).toBe('cannot read a.json: EACCES (FL_ERR_IO: in the text stays)');
    expect(e.message).toBe(`FL_ERR_IO: ${e.reason}`);
    expect(e.reason).not.toMatch(/^FL_ERR_/);
  });

  it('a rewrapped error keeps the caught one as its cause, with its stack, down the chain', () => {
    const readConfig = (): never => {
      try {
        JSON.parse('{ not json');
      } catch (e) {
        throw new FedloraError('FL_ERR_INVALID_CONFIG', `a.json is not JSON: ${(e as Error).message}`, { path: 'a.json' }, { cause: e });
      }
      throw new Error('unreachable');
    };
    const loadJob = (): never => {
      try {
        readConfig();
      } catch (e) {
        throw new FedloraError('FL_ERR_JOB_FAILED', `job j: ${(e as FedloraError).reason}`, {}, { cause: e });
      }
      throw new Error('unreachable');
    };
    let outer: FedloraError | undefined;
    try {
      loadJob();
    } catch (e) {
      outer = e as FedloraError;
    }
    expect(outer?.code).toBe('FL_ERR_JOB_FAILED');
    expect(outer?.reason).toMatch(/^job j: a\.json is not JSON: /);
    const middle = outer?.cause as FedloraError;
    expect(isFedloraError(middle, 'FL_ERR_INVALID_CONFIG')).toBe(true);
    expect(middle.details).toEqual({ path: 'a.json' });
    expect(middle.stack).toContain('readConfig');
    const root = middle.cause as Error;
    expect(root).toBeInstanceOf(SyntaxError);
    expect(root.stack).toContain('JSON.parse');
    expect(middle.message).toContain(root.message);
  });

  it('an error made without a cause has none', () => {
    expect('cause' in new FedloraError('FL_ERR_IO', 'x')).toBe(false);
  });
});

// reasonOf is what a worker thread's error reply carries next to its code (issue 14;
// docs/architecture.md, "Conventions"): the code must not end up in the text as well.
describe('reasonOf', () => {
  it('a FedloraError gives its bare reason, without the code prefix', () => {
    const e = new FedloraError('FL_ERR_MODEL_CONFIG', 'config.json: hidden_size must be > 0');
    expect(reasonOf(e)).toBe('config.json: hidden_size must be > 0');
    expect(reasonOf(e)).not.toContain('FL_ERR_');
  });

  it('a plain Error gives its message, even one that looks coded', () => {
    expect(reasonOf(new Error('EACCES: permission denied'))).toBe('EACCES: permission denied');
    expect(reasonOf(new TypeError('FL_ERR_IO: not ours'))).toBe('FL_ERR_IO: not ours');
  });

  it('another error with a string reason (the agent\'s RoundAborted) gives that reason', () => {
    class RoundAborted extends Error {
      constructor(readonly reason: string) {
        super(`round aborted: ${reason}`);
      }
    }
    expect(reasonOf(new RoundAborted('deadline passed'))).toBe('deadline passed');
  });

  it('a non-error gives its string; a non-string reason is not taken for one', () => {
    expect(reasonOf('worker exited with code 1')).toBe('worker exited with code 1');
    expect(reasonOf(42)).toBe('42');
    expect(reasonOf(null)).toBe('null');
    expect(reasonOf(undefined)).toBe('undefined');
    expect(reasonOf({ reason: 7 })).toBe('[object Object]');
  });

  it('a rewrap through reasonOf carries the code once and keeps the caught error as its cause', () => {
    const inner = new FedloraError('FL_ERR_MODEL_CONFIG', 'config.json is missing', { path: 'm/config.json' });
    const outer = new FedloraError('FL_ERR_TRAINING', reasonOf(inner), {}, { cause: inner });
    expect(outer.message).toBe('FL_ERR_TRAINING: config.json is missing');
    expect(outer.message.match(/FL_ERR_/g)).toHaveLength(1);
    expect(outer.cause).toBe(inner);
    expect(isFedloraError(outer.cause, 'FL_ERR_MODEL_CONFIG')).toBe(true);
    expect(reasonOf(outer)).toBe(reasonOf(inner));
  });
});
