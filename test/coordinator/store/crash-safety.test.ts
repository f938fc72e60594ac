import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Store } from '../../../coordinator/store/store.js';

const CHILD = join(import.meta.dirname, 'fixtures', 'commit-rounds-child.ts');

describe('store: crash safety', () => {
  it('a process killed with SIGKILL mid-commit leaves every committed round and no partial one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedlora-crash-'));
    const path = join(dir, 'fedlora.db');
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', CHILD, path], { stdio: ['ignore', 'pipe', 'inherit'] });
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
      let lastReported = -1;
      let jobId = '';
      // Kill it as soon as it reports its 8th commit: it is then inside the next round's transaction
      // (writing 1 MiB of state), the moment a torn write would show.
      await new Promise<void>((resolve, reject) => {
        child.on('exit', (code) => reject(new Error(`child exited (${code}) before its 8th commit`)));
        createInterface({ input: child.stdout! }).on('line', (line) => {
          const [, round, id] = line.split(' ');
          lastReported = Number(round);
          jobId = id!;
          if (lastReported === 7) {
            child.kill('SIGKILL');
            resolve();
          }
        });
      });
      expect(await exited).toBe('SIGKILL');

      const store = Store.open(path);
      try {
        const job = store.requireJob(jobId);
        const rounds = store.rounds(jobId);
        // Every reported round is there, possibly one more (committed before the kill landed, not yet printed).
        expect(job.round).toBeGreaterThanOrEqual(lastReported + 1);
        expect(job.round).toBeLessThanOrEqual(lastReported + 2);
        expect(rounds.map((r) => r.round)).toEqual(Array.from({ length: job.round }, (_, i) => i));
        for (const r of rounds) {
          expect(r.accepted).toBe(20);
          expect(store.updates(jobId, r.round)).toHaveLength(20);
        }
        // Nothing of the round that was in flight.
        expect(store.updates(jobId, job.round)).toEqual([]);
        const state = store.latestState(jobId)!;
        expect(state.round).toBe(job.round);
        expect(state.meta).toEqual({ round: job.round });
        expect(state.payload.length).toBe(1 << 20);
        expect(state.payload.every((b) => b === (job.round - 1) % 251)).toBe(true);
        expect(JSON.parse(store.ledger(jobId)!)).toEqual({ rounds: job.round });
        expect(store.isNonceUsed(jobId, `${job.round - 1}-c19`)).toBe(true);
        expect(store.isNonceUsed(jobId, `${job.round}-c0`)).toBe(false);
      } finally {
        store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
