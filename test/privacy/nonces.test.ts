import { describe, expect, it } from 'vitest';
import { MemoryNonceStore } from '../../privacy/nonces.js';

describe('MemoryNonceStore', () => {
  it('scopes nonces to job and round, and forgets closed rounds', () => {
    const store = new MemoryNonceStore();
    const key = { jobId: 'j', round: 1, clientId: 'c', nonce: 'n' };
    expect(store.checkAndAdd(key)).toBe(true);
    expect(store.checkAndAdd(key)).toBe(false);
    expect(store.has(key)).toBe(true);
    expect(store.checkAndAdd({ ...key, round: 2 })).toBe(true);
    expect(store.checkAndAdd({ ...key, clientId: 'd' })).toBe(true);
    store.forgetRoundsBefore('j', 2);
    expect(store.has(key)).toBe(false);
    expect(store.size).toBe(1);
    store.forgetJob('j');
    expect(store.size).toBe(0);
  });
});

describe('MemoryNonceStore bookkeeping', () => {
  it('forgetting an unknown job or rounds of a job with none is harmless', () => {
    const store = new MemoryNonceStore();
    store.forgetRoundsBefore('none', 5);
    store.forgetJob('none');
    expect(store.size).toBe(0);
    expect(store.has({ jobId: 'none', round: 0, clientId: 'c', nonce: 'n' })).toBe(false);
    expect(store.size).toBe(0); // has() creates nothing
  });

  it('keeps the open rounds when closing earlier ones, across jobs', () => {
    const store = new MemoryNonceStore();
    for (const jobId of ['a', 'b']) for (let round = 0; round < 5; round++) store.checkAndAdd({ jobId, round, clientId: 'c', nonce: `${round}` });
    store.forgetRoundsBefore('a', 3);
    expect(store.size).toBe(2 + 5);
    expect(store.has({ jobId: 'a', round: 3, clientId: 'c', nonce: '3' })).toBe(true);
    expect(store.has({ jobId: 'b', round: 0, clientId: 'c', nonce: '0' })).toBe(true);
  });
});
