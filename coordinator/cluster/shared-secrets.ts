/**
 * The secrets every node of a cluster must hold alike, kept in the database instead of files
 * beside it (coordinator/startup.ts, privacy/keys.ts do that for one node):
 *   - the admin token, so a dashboard link or an API call works on whichever node answers;
 *   - the coordinator's Ed25519 / X25519 key pairs, so a client's pinned fingerprint
 *     (privacy/key-pinning.ts) holds whichever node it reaches, and an update sealed on one node
 *     opens on another.
 * The first node to start creates them; `INSERT ... ON CONFLICT DO NOTHING` then reading the row
 * makes two nodes starting together agree on one value (the first insert wins, the other reads it).
 * Whoever can read the database can read these: protect it like the key file (docs/deployment.md).
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { FedloraError } from '../../shared/errors.js';
import { decodeKeyFile, encodeKeyFile, fingerprintOf, generateKeyPairs, publicKeysOf, type KeyPairs } from '../../privacy/keys.js';

const ADMIN_TOKEN = 'admin-token';
const COORDINATOR_KEYS = 'coordinator-keys';

export interface SharedSecrets {
  readonly adminToken: string;
  /** given: this start's flag or environment variable set it first; shared: another start had; generated: this start made it. */
  readonly adminTokenSource: 'given' | 'shared' | 'generated';
  readonly keys: KeyPairs;
  /** True when this start created the cluster's key pair (or imported it from `seedKeys`). */
  readonly keysCreated: boolean;
  /** SHA-256 hex over both public keys. */
  readonly fingerprint: string;
}

/** Stores `value` under `name` unless a value is there; returns the value that is there now and whether it is ours. */
async function putOnce(pool: pg.Pool, name: string, value: string, nodeId: string): Promise<{ value: string; ours: boolean }> {
  const inserted = await pool.query('INSERT INTO cluster_secrets (name, value, created_by, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING', [name, value, nodeId, Date.now()]);
  if (inserted.rowCount === 1) return { value, ours: true };
  const { rows } = await pool.query<{ value: string }>('SELECT value FROM cluster_secrets WHERE name = $1', [name]);
  return { value: rows[0]!.value, ours: false };
}

/**
 * Reads the cluster's admin token and key pair, creating each when no node has yet.
 * @param given the admin token this node was started with (flag, config or FEDLORA_ADMIN_TOKEN), if any
 * @param seedKeys a key pair to become the cluster's when it has none yet (a single node's key file,
 *   so the clients that pinned it keep their pin when it grows into a cluster)
 * @throws FL_ERR_INVALID_CONFIG when `given` or `seedKeys` differ from what the cluster already holds
 *   (every node must be started with the same token, or none)
 */
export async function loadOrCreateSharedSecrets(pool: pg.Pool, nodeId: string, given?: string, seedKeys?: KeyPairs): Promise<SharedSecrets> {
  const token = await putOnce(pool, ADMIN_TOKEN, given ?? randomBytes(24).toString('base64url'), nodeId);
  if (given !== undefined && token.value !== given) {
    throw new FedloraError('FL_ERR_INVALID_CONFIG', "the admin token given to this node (--admin-token, config or FEDLORA_ADMIN_TOKEN) differs from the cluster's, which another node set first: start every node with the same token, or none (they then share the first one)", { field: 'adminToken' });
  }
  const candidate = seedKeys ?? generateKeyPairs();
  const stored = await putOnce(pool, COORDINATOR_KEYS, encodeKeyFile('coordinator', candidate), nodeId);
  const keys = decodeKeyFile('the cluster database (cluster_secrets)', stored.value, 'coordinator');
  const fingerprint = fingerprintOf(publicKeysOf(keys));
  if (seedKeys !== undefined && fingerprint !== fingerprintOf(publicKeysOf(seedKeys))) {
    throw new FedloraError('FL_ERR_INVALID_CONFIG', `the key file given to this node (keyFile) differs from the cluster's key pair (fingerprint ${fingerprint}): give every node the same key file, or none`, { field: 'keyFile' });
  }
  return { adminToken: token.value, adminTokenSource: given !== undefined ? 'given' : token.ours ? 'generated' : 'shared', keys, keysCreated: stored.ours, fingerprint };
}
