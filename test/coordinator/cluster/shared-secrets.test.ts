/**
 * Shared secrets on a real PostgreSQL: nodes starting together agree on one admin token and one
 * coordinator key pair; a node given another token or key file than the cluster's is refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openClusterPool, type ClusterPool } from '../../../coordinator/cluster/cluster-pool.js';
import { ensureClusterTables } from '../../../coordinator/cluster/cluster-schema.js';
import { loadOrCreateSharedSecrets } from '../../../coordinator/cluster/shared-secrets.js';
import { fingerprintOf, generateKeyPairs, publicKeysOf } from '../../../privacy/keys.js';
import { requirePostgres, TestSchemas } from '../store/postgres-server.js';

const schemas = new TestSchemas();
const pools: ClusterPool[] = [];

async function freshPool(): Promise<ClusterPool> {
  const cluster = openClusterPool(schemas.fresh());
  pools.push(cluster);
  await ensureClusterTables(cluster.pool, cluster.schema);
  return cluster;
}

beforeAll(async () => {
  await requirePostgres();
});

afterAll(async () => {
  await Promise.all(pools.map((p) => p.pool.end()));
  await schemas.dropAll();
});

describe('loadOrCreateSharedSecrets', () => {
  it('four nodes starting at once share one admin token and one key pair; exactly one created them', async () => {
    const cluster = await freshPool();
    const all = await Promise.all(['n1', 'n2', 'n3', 'n4'].map((id) => loadOrCreateSharedSecrets(cluster.pool, id)));
    expect(new Set(all.map((s) => s.adminToken)).size).toBe(1);
    expect(new Set(all.map((s) => s.fingerprint)).size).toBe(1);
    expect(all.filter((s) => s.keysCreated)).toHaveLength(1);
    expect(all.filter((s) => s.adminTokenSource === 'generated')).toHaveLength(1);
    expect(all[0]!.adminToken.length).toBeGreaterThanOrEqual(16);
    // The secret halves came back too: the key pair is usable, and matches its fingerprint.
    expect(fingerprintOf(publicKeysOf(all[3]!.keys))).toBe(all[0]!.fingerprint);
    expect(Buffer.from(all[3]!.keys.box.secretKey).equals(Buffer.from(all[0]!.keys.box.secretKey))).toBe(true);
    // A later node reads them.
    const later = await loadOrCreateSharedSecrets(cluster.pool, 'n5');
    expect(later).toMatchObject({ adminToken: all[0]!.adminToken, adminTokenSource: 'shared', keysCreated: false, fingerprint: all[0]!.fingerprint });
  });

  it('a given token and key file seed the cluster; a node given different ones is refused', async () => {
    const cluster = await freshPool();
    const seed = generateKeyPairs();
    const first = await loadOrCreateSharedSecrets(cluster.pool, 'n1', 'cluster-admin-token-0123456789', seed);
    expect(first).toMatchObject({ adminToken: 'cluster-admin-token-0123456789', adminTokenSource: 'given', keysCreated: true, fingerprint: fingerprintOf(publicKeysOf(seed)) });
    expect((await loadOrCreateSharedSecrets(cluster.pool, 'n2', 'cluster-admin-token-0123456789')).adminTokenSource).toBe('given');
    await expect(loadOrCreateSharedSecrets(cluster.pool, 'n3', 'another-token-0123456789abcdef')).rejects.toMatchObject({ code: 'FL_ERR_INVALID_CONFIG', details: { field: 'adminToken' } });
    await expect(loadOrCreateSharedSecrets(cluster.pool, 'n4', undefined, generateKeyPairs())).rejects.toMatchObject({ code: 'FL_ERR_INVALID_CONFIG', details: { field: 'keyFile' } });
  });
});
