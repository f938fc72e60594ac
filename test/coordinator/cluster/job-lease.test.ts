/**
 * Job leases on a real PostgreSQL (a fresh schema per test): one holder at a time, taken only when
 * free or expired, every take bumps the epoch, a renewal or a fence check by a node that lost the
 * lease fails, and the keeper hands a dead node's job to another node.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openClusterPool, type ClusterPool } from '../../../coordinator/cluster/cluster-pool.js';
import { ensureClusterTables } from '../../../coordinator/cluster/cluster-schema.js';
import { JobLeases, LEASE_FENCE_SQL, type Lease } from '../../../coordinator/cluster/job-lease.js';
import { LeaseKeeper } from '../../../coordinator/cluster/lease-keeper.js';
import { requirePostgres, TestSchemas } from '../store/postgres-server.js';

const schemas = new TestSchemas();
const pools: ClusterPool[] = [];

async function freshPool(): Promise<ClusterPool> {
  const cluster = openClusterPool(schemas.fresh());
  pools.push(cluster);
  await ensureClusterTables(cluster.pool, cluster.schema);
  return cluster;
}

async function fenceRows(cluster: ClusterPool, lease: Lease): Promise<number> {
  const c = await cluster.pool.connect();
  try {
    await c.query('BEGIN');
    const { rows } = await c.query(LEASE_FENCE_SQL, [lease.jobId, lease.nodeId, lease.epoch]);
    await c.query('COMMIT');
    return rows.length;
  } finally {
    c.release();
  }
}

beforeAll(async () => {
  await requirePostgres();
});

afterAll(async () => {
  await Promise.all(pools.map((p) => p.pool.end()));
  await schemas.dropAll();
});

describe('JobLeases', () => {
  it('gives a job to one node at a time; another takes it only once it expired, under a new epoch that fences the old holder', async () => {
    const cluster = await freshPool();
    const a = new JobLeases(cluster.pool, 'node-a', 300);
    const b = new JobLeases(cluster.pool, 'node-b', 300);
    const la = await a.acquire('job_1');
    expect(la).toEqual({ jobId: 'job_1', nodeId: 'node-a', epoch: 1 });
    expect(await b.acquire('job_1')).toBeNull();
    expect(await a.renew(la!)).toBe(true);
    expect(await a.acquire('job_1')).toEqual(la); // ours already: same epoch
    expect(await fenceRows(cluster, la!)).toBe(1);

    // node-a stops renewing: once the database's clock passes the expiry, node-b takes the job.
    await cluster.pool.query("UPDATE job_leases SET expires_at = clock_timestamp() - interval '1 millisecond'");
    const lb = await b.acquire('job_1');
    expect(lb).toEqual({ jobId: 'job_1', nodeId: 'node-b', epoch: 2 });
    expect(await a.renew(la!)).toBe(false);
    expect(await a.holds(la!)).toBe(false);
    expect(await fenceRows(cluster, la!)).toBe(0); // node-a can no longer commit a round
    expect(await fenceRows(cluster, lb!)).toBe(1);
    expect(await a.release(la!)).toBe(false); // a stale release frees nothing
    expect((await a.current('job_1'))?.nodeId).toBe('node-b');

    // A clean release frees it at once, and the next take bumps the epoch again.
    expect(await b.release(lb!)).toBe(true);
    expect(await a.acquire('job_1')).toEqual({ jobId: 'job_1', nodeId: 'node-a', epoch: 3 });
  });

  it('of eight nodes taking a free job at once, exactly one gets it', async () => {
    const cluster = await freshPool();
    const nodes = Array.from({ length: 8 }, (_, i) => new JobLeases(cluster.pool, `node-${i}`, 10_000));
    const results = await Promise.all(nodes.map((n) => n.acquire('job_race')));
    const winners = results.filter((r) => r !== null);
    expect(winners).toHaveLength(1);
    expect(winners[0]!.epoch).toBe(1);
    expect((await nodes[0]!.holders()).get('job_race')).toBe(winners[0]!.nodeId);
  });
});

describe('LeaseKeeper', () => {
  it("takes a free job, and a dead node's job once its lease expired; the old holder learns it lost the job at its next renewal", async () => {
    const cluster = await freshPool();
    const ttl = 400;
    const events: string[] = [];
    let bAcquired!: (l: Lease) => void;
    const whenB = new Promise<Lease>((resolve) => (bAcquired = resolve));
    let aLost!: (why: string) => void;
    const whenALost = new Promise<string>((resolve) => (aLost = resolve));
    const a = new LeaseKeeper(new JobLeases(cluster.pool, 'node-a', ttl), {
      candidates: async () => ['job_k'],
      onAcquired: (l) => events.push(`a+${l.epoch}`),
      onLost: (jobId, why) => aLost(`${jobId} ${why}`),
    });
    await a.start();
    expect(a.heldJobs()).toEqual(['job_k']);
    const b = new LeaseKeeper(new JobLeases(cluster.pool, 'node-b', ttl), {
      candidates: async () => ['job_k'],
      onAcquired: (l) => bAcquired(l),
      onLost: () => events.push('b-'),
    });
    await b.start();
    expect(b.heldJobs()).toEqual([]); // held and renewed by node-a

    // node-a "dies": it stops renewing but keeps its in-memory belief (as a paused process would).
    await a.stop(false);
    const taken = await whenB;
    expect(taken).toMatchObject({ jobId: 'job_k', nodeId: 'node-b', epoch: 2 });

    // A paused node-a that comes back finds the lease taken at its first renewal.
    const stale = new LeaseKeeper(new JobLeases(cluster.pool, 'node-a', ttl), { candidates: async () => [], onAcquired: () => undefined, onLost: (jobId, why) => aLost(`${jobId} ${why}`) });
    (stale as unknown as { held: Map<string, unknown> }).held.set('job_k', { lease: { jobId: 'job_k', nodeId: 'node-a', epoch: 1 }, renewedAt: Date.now() });
    await stale.tick();
    expect(await whenALost).toBe('job_k taken');
    await b.stop();
    expect(events).toEqual(['a+1']);
    // b released on its clean stop: the row is free.
    expect((await new JobLeases(cluster.pool, 'x', ttl).current('job_k'))?.nodeId).toBeNull();
  });

  it('releases a held job once it is no longer a candidate (it ended)', async () => {
    const cluster = await freshPool();
    let active = ['job_e'];
    const leases = new JobLeases(cluster.pool, 'node-a', 60_000);
    const keeper = new LeaseKeeper(leases, { candidates: async () => active, onAcquired: () => undefined, onLost: () => undefined });
    await keeper.start();
    expect(keeper.heldJobs()).toEqual(['job_e']);
    expect((await leases.current('job_e'))?.nodeId).toBe('node-a');
    active = [];
    await keeper.tick();
    expect(keeper.heldJobs()).toEqual([]);
    expect((await leases.current('job_e'))?.nodeId).toBeNull();
    await keeper.stop();
  });
});
