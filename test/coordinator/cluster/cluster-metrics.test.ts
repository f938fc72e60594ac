/** The cluster gauges in a prom-client registry, read from real node rows on PostgreSQL. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { openClusterPool, type ClusterPool } from '../../../coordinator/cluster/cluster-pool.js';
import { ensureClusterTables } from '../../../coordinator/cluster/cluster-schema.js';
import { NodeRegistry } from '../../../coordinator/cluster/node-registry.js';
import { registerClusterMetrics } from '../../../coordinator/cluster/cluster-metrics.js';
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

describe('registerClusterMetrics', () => {
  it("shows every node's jobs and clients, labelled by node; a stopped node reads 0", async () => {
    const a = new NodeRegistry(cluster.pool, 'node-a', 'http://127.0.0.1:1001', 60_000);
    const b = new NodeRegistry(cluster.pool, 'node-b', 'http://127.0.0.1:1002', 60_000);
    await a.start(() => ({ jobs: ['job_1', 'job_2'], clients: 4 }));
    await b.start(() => ({ jobs: ['job_3'], clients: 7 }));
    const registry = new Registry();
    registerClusterMetrics(registry, a); // scraped on node-a, shows node-b too
    let text = await registry.metrics();
    expect(text).toContain('fedlora_cluster_node_clients{node="node-a",url="http://127.0.0.1:1001"} 4');
    expect(text).toContain('fedlora_cluster_node_clients{node="node-b",url="http://127.0.0.1:1002"} 7');
    expect(text).toContain('fedlora_cluster_node_jobs{node="node-a",url="http://127.0.0.1:1001"} 2');
    expect(text).toContain('fedlora_cluster_node_up{node="node-b",url="http://127.0.0.1:1002"} 1');
    await b.stop();
    text = await registry.metrics();
    expect(text).toContain('fedlora_cluster_node_up{node="node-b",url="http://127.0.0.1:1002"} 0');
    expect(text).toContain('fedlora_cluster_node_clients{node="node-b",url="http://127.0.0.1:1002"} 0');
    await a.stop();
  });
});
