/**
 * The nodes of a cluster, one row each in `cluster_nodes` (cluster-schema.ts): the node's id and
 * URL, when it started, when it was last heard from (the database's clock), the jobs it drives and
 * how many clients it holds. Each node writes its own row every heartbeat and reads everyone's for
 * the dashboard and `/metrics` (metrics.ts). A node not heard from for `aliveMs` is shown as down;
 * one that stopped cleanly says when.
 */
import type pg from 'pg';

export interface NodeState {
  /** Jobs this node drives (holds the lease of). */
  readonly jobs: readonly string[];
  /** Authenticated client connections this node holds. */
  readonly clients: number;
}

export interface NodeRecord extends NodeState {
  readonly nodeId: string;
  readonly url: string;
  readonly startedAt: number;
  /** ms since its last heartbeat, on the database's clock. */
  readonly silentMs: number;
  readonly alive: boolean;
  readonly stopped: boolean;
}

interface NodeRow {
  node_id: string;
  url: string;
  started_at: string;
  silent_ms: string;
  jobs: string;
  clients: number;
  stopped: boolean;
}

export class NodeRegistry {
  private timer: NodeJS.Timeout | undefined;
  private beating: Promise<void> | null = null;

  /**
   * @param aliveMs a node silent for longer is shown as down. @default 3 heartbeats
   */
  constructor(
    private readonly pool: pg.Pool,
    readonly nodeId: string,
    readonly url: string,
    readonly heartbeatMs: number,
    readonly aliveMs = 3 * heartbeatMs,
  ) {}

  /** Writes this node's row (a first heartbeat), then one every heartbeatMs with what `state` says. */
  async start(state: () => NodeState, onError: (e: unknown) => void = () => undefined): Promise<void> {
    await this.pool.query(
      `INSERT INTO cluster_nodes (node_id, url, started_at, last_seen, jobs, clients) VALUES ($1, $2, $3, clock_timestamp(), '[]', 0)
       ON CONFLICT (node_id) DO UPDATE SET url = excluded.url, started_at = excluded.started_at, last_seen = excluded.last_seen, stopped_at = NULL`,
      [this.nodeId, this.url, Date.now()],
    );
    await this.heartbeat(state());
    this.timer = setInterval(() => {
      this.beating ??= this.heartbeat(state())
        .catch(onError)
        .finally(() => {
          this.beating = null;
        });
    }, this.heartbeatMs);
    this.timer.unref();
  }

  /** Records this node's jobs and clients, and that it is alive now. */
  async heartbeat(state: NodeState): Promise<void> {
    await this.pool.query('UPDATE cluster_nodes SET last_seen = clock_timestamp(), jobs = $2, clients = $3 WHERE node_id = $1', [this.nodeId, JSON.stringify([...state.jobs].sort()), state.clients]);
  }

  /** Every node that ever registered, by start time. */
  async list(): Promise<NodeRecord[]> {
    const { rows } = await this.pool.query<NodeRow>(
      `SELECT node_id, url, started_at, jobs, clients, stopped_at IS NOT NULL AS stopped,
              (extract(epoch FROM clock_timestamp() - last_seen) * 1000)::bigint AS silent_ms
         FROM cluster_nodes ORDER BY started_at, node_id`,
    );
    return rows.map((r) => {
      const silentMs = Number(r.silent_ms);
      return { nodeId: r.node_id, url: r.url, startedAt: Number(r.started_at), silentMs, alive: !r.stopped && silentMs <= this.aliveMs, stopped: r.stopped, jobs: JSON.parse(r.jobs) as string[], clients: r.clients };
    });
  }

  /** Stops the heartbeat and marks the row stopped (a clean stop: shown as stopped, not down). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.beating;
    await this.pool.query("UPDATE cluster_nodes SET stopped_at = clock_timestamp(), jobs = '[]', clients = 0 WHERE node_id = $1", [this.nodeId]);
  }
}
