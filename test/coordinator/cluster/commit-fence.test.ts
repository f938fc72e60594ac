/**
 * The lease fence in the PostgreSQL store's round commit: a node commits under its lease; once
 * another node has taken the lease (expired, epoch + 1), the first node's commit of the next round
 * is refused whole (FL_ERR_ROUND_STATE, nothing written) and the new holder's commit lands.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresStore } from '../../../coordinator/store/postgres-store.js';
import type { RoundCommit } from '../../../coordinator/store/store-api.js';
import { openClusterPool, type ClusterPool } from '../../../coordinator/cluster/cluster-pool.js';
import { ensureClusterTables } from '../../../coordinator/cluster/cluster-schema.js';
import { JobLeases } from '../../../coordinator/cluster/job-lease.js';
import { expectCode, spec } from '../store/store-contract.js';
import { requirePostgres, TestSchemas } from '../store/postgres-server.js';

const schemas = new TestSchemas();
let cluster: ClusterPool;
let store: PostgresStore;

beforeAll(async () => {
  await requirePostgres();
  const location = schemas.fresh();
  store = await PostgresStore.open(location);
  cluster = openClusterPool(location);
  await ensureClusterTables(cluster.pool, cluster.schema);
});

afterAll(async () => {
  await store.close();
  await cluster.pool.end();
  await schemas.dropAll();
});

function commit(jobId: string, round: number, lease: { nodeId: string; epoch: number }): RoundCommit {
  return {
    jobId, round, attempts: 1, participants: ['c1'], metrics: {}, startedAt: 1, committedAt: 2,
    updates: [{ clientId: 'c1', attempt: 0, status: 'accepted', bytes: 1, examples: 1, receivedAt: 1 }],
    state: { meta: { round: round + 1 }, payload: new Uint8Array([round + 1]) },
    nonces: [{ nonce: `n${round}-${lease.nodeId}`, clientId: 'c1' }],
    lease,
  };
}

describe('commitRound with a lease', () => {
  it('refuses the commit of a node whose lease another node took, and writes nothing of it', async () => {
    const job = await store.createJob({ ...spec, rounds: 3 });
    await store.startJob(job.id, [{ path: 'model.layers.0.self_attn.q_proj', outFeatures: 8, inFeatures: 8 }], { meta: {}, payload: new Uint8Array([0]) });
    const a = new JobLeases(cluster.pool, 'node-a', 60_000);
    const b = new JobLeases(cluster.pool, 'node-b', 60_000);
    const la = (await a.acquire(job.id))!;
    expect(await store.commitRound(commit(job.id, 0, la))).toMatchObject({ round: 1 });

    // node-a stalls past its lease; node-b takes the job over.
    await cluster.pool.query("UPDATE job_leases SET expires_at = clock_timestamp() - interval '1 millisecond'");
    const lb = (await b.acquire(job.id))!;
    expect(lb.epoch).toBe(la.epoch + 1);
    await expectCode(store.commitRound(commit(job.id, 1, la)), 'FL_ERR_ROUND_STATE', /no longer holds the lease/);
    expect((await store.requireJob(job.id)).round).toBe(1);
    expect(await store.isNonceUsed(job.id, 'n1-node-a')).toBe(false);
    expect((await store.rounds(job.id)).map((r) => r.round)).toEqual([0]);

    expect(await store.commitRound(commit(job.id, 1, lb))).toMatchObject({ round: 2 });
    // A lease that was never taken fences too (a node that never held the job).
    await expectCode(store.commitRound(commit(job.id, 2, { nodeId: 'node-c', epoch: 1 })), 'FL_ERR_ROUND_STATE');
  });
});
