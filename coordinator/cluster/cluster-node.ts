/**
 * One coordinator node's membership of a cluster, the parts of coordinator/cluster/ put together in
 * the order a node needs them: `open` (pool, tables, the shared admin token and key pair, before
 * the node listens), `joinBus` (the socket.io adapter on its server), `start` (once it listens: its
 * registry row with its URL, then the lease keeper, which starts handing it jobs), `stop` (releases
 * its leases so other nodes take its jobs at once, marks it stopped, closes the pool; the socket.io
 * server must be closed first, its adapter uses the pool). docs/architecture.md, "Several nodes".
 */
import { randomBytes } from 'node:crypto';
import type { Registry } from 'prom-client';
import type { Server } from 'socket.io';
import { FedloraError } from '../../shared/errors.js';
import type { KeyPairs } from '../../privacy/keys.js';
import { openClusterPool, type ClusterPool } from './cluster-pool.js';
import { ensureClusterTables } from './cluster-schema.js';
import { registerClusterMetrics } from './cluster-metrics.js';
import { JobLeases } from './job-lease.js';
import { LeaseKeeper, type LeaseKeeperHooks } from './lease-keeper.js';
import { joinMessageBus } from './message-bus.js';
import { NodeRegistry, type NodeState } from './node-registry.js';
import { loadOrCreateSharedSecrets, type SharedSecrets } from './shared-secrets.js';

export interface ClusterNodeOptions {
  /** This node's id. @default `node_` + 12 random hex digits (a new id each start) */
  readonly nodeId?: string;
  /** The admin token this node was given, if any (every node the same, or none). */
  readonly adminToken?: string;
  /** A key pair to become the cluster's when it has none (a single node's key file). */
  readonly seedKeys?: KeyPairs;
  /** ms a job lease holds without renewal: how long a dead node's jobs wait. @default 15000 */
  readonly leaseTtlMs?: number;
  /** ms between registry heartbeats (and the socket.io adapter's). @default 5000 */
  readonly heartbeatMs?: number;
}

export interface ClusterNodeHooks extends LeaseKeeperHooks {
  /** What this node reports in its heartbeat. */
  state(): NodeState;
}

function notStarted(what: string): FedloraError {
  return new FedloraError('FL_ERR_INTERNAL', `ClusterNode.${what} was used before start()`);
}

export class ClusterNode {
  private keeper: LeaseKeeper | null = null;
  private registry: NodeRegistry | null = null;

  private constructor(
    readonly nodeId: string,
    private readonly cluster: ClusterPool,
    readonly secrets: SharedSecrets,
    readonly leases: JobLeases,
    private readonly heartbeatMs: number,
  ) {}

  /**
   * Connects, creates the cluster tables if needed and reads (or creates) the shared secrets.
   * @throws FL_ERR_INVALID_CONFIG when the given token or key pair differ from the cluster's; pg's errors when the database cannot be reached
   */
  static async open(location: string, options: ClusterNodeOptions = {}): Promise<ClusterNode> {
    const nodeId = options.nodeId ?? `node_${randomBytes(6).toString('hex')}`;
    const cluster = openClusterPool(location);
    try {
      await ensureClusterTables(cluster.pool, cluster.schema);
      const secrets = await loadOrCreateSharedSecrets(cluster.pool, nodeId, options.adminToken, options.seedKeys);
      return new ClusterNode(nodeId, cluster, secrets, new JobLeases(cluster.pool, nodeId, options.leaseTtlMs ?? 15_000), options.heartbeatMs ?? 5000);
    } catch (e) {
      await cluster.pool.end();
      throw e;
    }
  }

  /** Makes the node's socket.io server a member of the cluster's message bus. */
  joinBus(io: Server, onError?: (e: Error) => void): void {
    joinMessageBus(io, this.cluster, { heartbeatMs: this.heartbeatMs, ...(onError !== undefined && { onError }) });
  }

  /** Adds the every-node gauges to a metrics registry (after `start`). */
  registerMetrics(registry: Registry): void {
    if (this.registry === null) throw notStarted('registerMetrics');
    registerClusterMetrics(registry, this.registry);
  }

  /** Every node the registry knows (after `start`). */
  nodes(): NodeRegistry {
    if (this.registry === null) throw notStarted('nodes');
    return this.registry;
  }

  /** The lease keeper (after `start`): which jobs this node holds, take one now, release one. */
  get jobs(): LeaseKeeper {
    if (this.keeper === null) throw notStarted('jobs');
    return this.keeper;
  }

  /** Registers the node under its URL, then starts renewing and taking leases (its first pass is awaited). */
  async start(url: string, hooks: ClusterNodeHooks): Promise<void> {
    this.keeper = new LeaseKeeper(this.leases, hooks);
    this.registry = new NodeRegistry(this.cluster.pool, this.nodeId, url, this.heartbeatMs);
    await this.registry.start(() => hooks.state(), (e) => hooks.onError?.(e));
    await this.keeper.start();
  }

  /** A clean stop: releases this node's leases, marks it stopped, closes the pool. Close the socket.io server first. */
  async stop(): Promise<void> {
    await this.keeper?.stop(true);
    await this.registry?.stop().catch(() => undefined);
    await this.cluster.pool.end();
  }
}
