/**
 * Two cluster nodes on a real PostgreSQL, through ClusterNode: they share the secrets, one of them
 * drives a job, the other takes it over at once when the first stops cleanly, and either node's
 * registry and metrics show both.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { ClusterNode, type ClusterNodeHooks } from '../../../coordinator/cluster/cluster-node.js';
import type { Lease } from '../../../coordinator/cluster/job-lease.js';
import { requirePostgres, TestSchemas } from '../store/postgres-server.js';

const schemas = new TestSchemas();
const open: ClusterNode[] = [];

beforeAll(async () => {
  await requirePostgres();
});

afterAll(async () => {
  for (const n of open) await n.stop().catch(() => undefined);
  await schemas.dropAll();
});

function hooks(acquired: (l: Lease) => void, held: () => string[]): ClusterNodeHooks {
  return { candidates: async () => ['job_x'], onAcquired: acquired, onLost: () => undefined, state: () => ({ jobs: held(), clients: 0 }) };
}

describe('ClusterNode', () => {
  it('shares secrets, gives the job to one node, and hands it to the other when that one stops', async () => {
    const location = schemas.fresh();
    const [a, b] = await Promise.all([ClusterNode.open(location, { nodeId: 'node-a', leaseTtlMs: 60_000, heartbeatMs: 60_000 }), ClusterNode.open(location, { nodeId: 'node-b', leaseTtlMs: 60_000, heartbeatMs: 60_000 })]);
    open.push(a, b);
    expect(a.secrets.adminToken).toBe(b.secrets.adminToken);
    expect(a.secrets.fingerprint).toBe(b.secrets.fingerprint);

    const acquiredA: Lease[] = [];
    await a.start('http://127.0.0.1:1001', hooks((l) => acquiredA.push(l), () => a.jobs.heldJobs()));
    expect(acquiredA.map((l) => [l.jobId, l.epoch])).toEqual([['job_x', 1]]);
    let bGot!: (l: Lease) => void;
    const whenB = new Promise<Lease>((resolve) => (bGot = resolve));
    await b.start('http://127.0.0.1:1002', hooks((l) => bGot(l), () => b.jobs.heldJobs()));
    expect(b.jobs.heldJobs()).toEqual([]);

    await a.nodes().heartbeat({ jobs: a.jobs.heldJobs(), clients: 0 });
    const metrics = new Registry();
    b.registerMetrics(metrics);
    expect(await metrics.metrics()).toContain('fedlora_cluster_node_jobs{node="node-a",url="http://127.0.0.1:1001"} 1');

    await a.stop(); // releases job_x at once
    open.splice(open.indexOf(a), 1);
    await b.jobs.tick(); // b's next pass (every ttl/3) finds it free
    expect(await whenB).toMatchObject({ jobId: 'job_x', nodeId: 'node-b', epoch: 2 });
    const nodes = await b.nodes().list();
    expect(nodes.map((n) => [n.nodeId, n.alive, n.stopped])).toEqual([
      ['node-a', false, true],
      ['node-b', true, false],
    ]);
  });
});
