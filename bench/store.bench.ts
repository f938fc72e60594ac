/**
 * The store's two transactions that carry a round, SQLite (one file, WAL, synchronous=FULL) against
 * PostgreSQL (a local server, default settings: fsync and synchronous_commit on), through the same
 * Store interface the engine uses:
 *   - commitRound: the round record, K update records, K nonces, the ledger and the next global
 *     state (S bytes) in one transaction;
 *   - recordUpdates: K update records of a retried attempt in one transaction.
 * Both stores are driven alternately (interleavedMedians) so load from other processes falls on
 * both alike. Printed: medians, rounds/s and update records/s, the ratio PostgreSQL / SQLite time,
 * and the machine.
 *
 * `npm run bench store` (FEDLORA_BENCH_POSTGRES picks the server; default the test server of
 * tools/test-prerequisites.sh; the bench works in its own schema and drops it at the end).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../coordinator/store/open-store.js';
import type { Store, UpdateRecord } from '../coordinator/store/store-api.js';
import { JobSpecSchema } from '../shared/protocol/job-spec.js';
import { machineLine } from './machine.js';
import { interleavedMedians } from './timing.js';

const SERVER = process.env.FEDLORA_BENCH_POSTGRES ?? process.env.FEDLORA_TEST_POSTGRES ?? 'postgres://fedlora:fedlora@127.0.0.1:5432/fedlora_test';
const SCHEMA = `fedlora_bench_${process.pid}`;
const REPS = 15;

const CASES = [
  { clients: 100, stateBytes: 1 << 20 },
  { clients: 1000, stateBytes: 64 << 10 },
];

function records(k: number, attempt: number): UpdateRecord[] {
  return Array.from({ length: k }, (_, i) => ({ clientId: `cl_${i}`, attempt, status: 'accepted' as const, bytes: 1 << 20, examples: 100 + i, receivedAt: Date.now() }));
}

/** A running job and a committer of its next round. */
async function committer(store: Store, clients: number, stateBytes: number): Promise<{ commit: () => Promise<unknown>; record: () => Promise<unknown> }> {
  const spec = JobSpecSchema.parse({
    strategy: 'fedavg', rounds: 100_000, clientsPerRound: clients, minClients: 1,
    model: { sha256: 'a'.repeat(64), targetModules: ['q_proj'] }, rank: 4, seed: 1,
  });
  const job = await store.createJob(spec);
  await store.startJob(job.id, [{ path: 'm.q_proj', outFeatures: 4, inFeatures: 4 }], { meta: {}, payload: new Uint8Array(16) });
  const payload = new Uint8Array(stateBytes).fill(7);
  let round = 0;
  return {
    commit: async () => {
      const updates = records(clients, 0);
      await store.commitRound({
        jobId: job.id, round, attempts: 1, participants: updates.map((u) => u.clientId!), metrics: { loss: 1 },
        startedAt: Date.now(), committedAt: Date.now(), updates, state: { meta: { round: round + 1 }, payload },
        ledger: JSON.stringify({ round }), nonces: updates.map((u) => ({ nonce: `${round}-${u.clientId}`, clientId: u.clientId! })),
      });
      round++;
    },
    record: () => store.recordUpdates(job.id, round, records(clients, 1)),
  };
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fedlora-bench-store-'));
  const url = new URL(SERVER);
  url.searchParams.set('schema', SCHEMA);
  const sqlite = await openStore(join(dir, 'bench.db'));
  let postgres: Store;
  try {
    postgres = await openStore(url.toString());
  } catch (e) {
    await sqlite.close();
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`store bench: PostgreSQL at ${redacted(SERVER)} is not reachable; start it with 'sudo bash tools/test-prerequisites.sh' or set FEDLORA_BENCH_POSTGRES`, { cause: e });
  }
  try {
    console.log(`PostgreSQL: ${postgres.location}; SQLite: ${sqlite.location}; ${REPS} repetitions, medians`);
    console.log('K clients  state KiB  op            SQLite ms  PostgreSQL ms  SQLite/s  PostgreSQL/s  ratio PG/SQLite time');
    for (const c of CASES) {
      const s = await committer(sqlite, c.clients, c.stateBytes);
      const p = await committer(postgres, c.clients, c.stateBytes);
      const t = await interleavedMedians(REPS, { sqliteCommit: s.commit, postgresCommit: p.commit, sqliteRecord: s.record, postgresRecord: p.record });
      const row = (op: string, a: number, b: number, unit: number, what: string): void => {
        console.log(
          `${String(c.clients).padStart(9)}  ${String(c.stateBytes >> 10).padStart(9)}  ${op.padEnd(12)}  ${(a * 1e3).toFixed(2).padStart(9)}  ${(b * 1e3).toFixed(2).padStart(13)}  ` +
            `${(unit / a).toFixed(0).padStart(8)}  ${(unit / b).toFixed(0).padStart(12)}  ${(b / a).toFixed(2).padStart(8)}   (${what}/s)`,
        );
      };
      row('commitRound', t.sqliteCommit!, t.postgresCommit!, 1, 'rounds');
      row('recordUpdates', t.sqliteRecord!, t.postgresRecord!, c.clients, 'records');
    }
    console.log(machineLine());
  } finally {
    await sqlite.close();
    await postgres.close();
    rmSync(dir, { recursive: true, force: true });
    execFileSync('psql', [SERVER, '-q', '-c', `DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`], { stdio: 'ignore' });
  }
}

function redacted(location: string): string {
  return location.replace(/:[^:@/]*@/, ':***@');
}
