/**
 * The node registry on a real PostgreSQL: each node's row carries its URL, jobs and clients; a
 * node that stops cleanly is shown stopped, one that goes silent is shown down.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openClusterPool, type ClusterPool } from '../../../coordinator/cluster/cluster-pool.js';
import { ensureClusterTables } from '../../../coordinator/cluster/cluster-schema.js';
import { NodeRegistry } from '../../../coordinator/cluster/node-registry.js';
import { requirePostgres, TestSchemas } from '../store/postgres-server.js';

const schemas = new TestSchemas();
let cluster: ClusterPool;

beforeAll(async () => {
  await requirePostgres();
  cluster = openClusterPool(schemas.fresh());
  await ensureClusterTables(cluster.pool, cluster.schema);
});

afterAll(async () => {
  await cluster.pool.end();
  await schemas.dropAll();
});

describe('NodeRegistry', () => {
  it('lists every node with its jobs and clients; a clean stop reads stopped, silence reads down', async () => {
    const a = new NodeRegistry(cluster.pool, 'node-a', 'http://127.0.0.1:1001', 60_000);
    const b = new NodeRegistry(cluster.pool, 'node-b', 'http://127.0.0.1:1002', 60_000);
    await a.start(() => ({ jobs: ['job_2', 'job_1'], clients: 3 }));
    await b.start(() => ({ jobs: [], clients: 5 }));
    let nodes = await a.list();
    expect(nodes.map((n) => [n.nodeId, n.url, n.jobs, n.clients, n.alive, n.stopped])).toEqual([
      ['node-a', 'http://127.0.0.1:1001', ['job_1', 'job_2'], 3, true, false],
      ['node-b', 'http://127.0.0.1:1002', [], 5, true, false],
    ]);
    await b.heartbeat({ jobs: ['job_3'], clients: 1 });
    await a.stop();
    // node-b goes silent: its last heartbeat moved into the past (as if it died ten minutes ago).
    await cluster.pool.query("UPDATE cluster_nodes SET last_seen = last_seen - interval '10 minutes' WHERE node_id = 'node-b'");
    nodes = await b.list();
    expect(nodes.map((n) => [n.nodeId, n.jobs, n.clients, n.alive, n.stopped])).toEqual([
      ['node-a', [], 0, false, true],
      ['node-b', ['job_3'], 1, false, false],
    ]);
    expect(nodes[1]!.silentMs).toBeGreaterThanOrEqual(600_000);
    await b.stop();
  });
});
