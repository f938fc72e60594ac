/**
 * Messages between the nodes of a cluster: socket.io's PostgreSQL adapter (@socket.io/postgres-adapter,
 * LISTEN/NOTIFY on the database the nodes already share; docs/architecture.md, "Several nodes", says
 * why this one and not Redis). With it, an emit to a room or to a socket id reaches that socket on
 * whichever node holds it, `fetchSockets()` returns every node's sockets, and `serverSideEmit`
 * reaches the other nodes (with acknowledgements). Payloads over NOTIFY's 8000 bytes, or binary
 * ones, travel through the attachments table (cluster-schema.ts), which the adapter prunes.
 */
import { createAdapter } from '@socket.io/postgres-adapter';
import type { Server } from 'socket.io';
import type { ClusterPool } from './cluster-pool.js';
import { ATTACHMENTS_TABLE } from './cluster-schema.js';

export interface MessageBusOptions {
  /** ms between two adapter heartbeats (how nodes learn of each other). @default 2000 */
  readonly heartbeatMs?: number;
  /** ms without a heartbeat before a node is counted out of the cluster's requests. @default 3 heartbeats */
  readonly heartbeatTimeoutMs?: number;
  /** Where the adapter's errors go. @default ignored */
  readonly onError?: (e: Error) => void;
}

/**
 * Makes `io` (every namespace, present and future) a member of the cluster.
 * The tables must exist first (ensureClusterTables).
 */
export function joinMessageBus(io: Server, cluster: ClusterPool, options: MessageBusOptions = {}): void {
  const heartbeatInterval = options.heartbeatMs ?? 2000;
  io.adapter(
    createAdapter(cluster.pool, {
      channelPrefix: cluster.channelPrefix,
      tableName: ATTACHMENTS_TABLE,
      heartbeatInterval,
      heartbeatTimeout: options.heartbeatTimeoutMs ?? 3 * heartbeatInterval,
      errorHandler: options.onError ?? (() => undefined),
    }),
  );
}
