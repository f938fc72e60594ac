/**
 * Job leases: each job is driven by one node at a time, the holder of its row in `job_leases`
 * (cluster-schema.ts). A lease is taken only when the row is free (released) or expired, renewed
 * by its holder well before it expires (lease-keeper.ts, every ttl/3), released on a clean stop.
 * Every take bumps the row's epoch: the pair (node, epoch) fences the holder's writes, because the
 * store's round commit re-reads the row in its own transaction (`FOR SHARE`) and refuses the commit
 * when another node has taken the lease since (coordinator/store/postgres-store.ts `commitRound`),
 * so a node that lost its lease (paused, cut off from the database) can never commit a round.
 * Expiry is on the database's clock (clock_timestamp()), never a node's.
 */
import type pg from 'pg';

export interface Lease {
  readonly jobId: string;
  readonly nodeId: string;
  /** Bumped by every take: a commit under an older epoch is refused. */
  readonly epoch: number;
}

export interface LeaseRow {
  readonly jobId: string;
  /** null once released. */
  readonly nodeId: string | null;
  readonly epoch: number;
  readonly expired: boolean;
}

/** The SQL that checks a lease inside a commit's transaction: one row when (job, node, epoch) still holds it. */
export const LEASE_FENCE_SQL = 'SELECT 1 FROM job_leases WHERE job_id = $1 AND node_id = $2 AND epoch = $3 FOR SHARE';

export class JobLeases {
  /**
   * @param ttlMs how long a lease holds without renewal; a dead holder's jobs wait this long for a new driver
   */
  constructor(
    private readonly pool: pg.Pool,
    readonly nodeId: string,
    readonly ttlMs: number,
  ) {}

  /**
   * Takes the job's lease when it is free or expired (or already ours: then the same epoch, renewed).
   * @returns the lease, or null when another node holds it
   */
  async acquire(jobId: string): Promise<Lease | null> {
    const { rows } = await this.pool.query<{ epoch: string }>(
      `INSERT INTO job_leases AS l (job_id, node_id, epoch, expires_at, acquired_at)
         VALUES ($1, $2, 1, clock_timestamp() + $3 * interval '1 millisecond', clock_timestamp())
       ON CONFLICT (job_id) DO UPDATE SET
         node_id = excluded.node_id,
         epoch = CASE WHEN l.node_id = excluded.node_id AND l.expires_at >= clock_timestamp() THEN l.epoch ELSE l.epoch + 1 END,
         expires_at = excluded.expires_at,
         acquired_at = CASE WHEN l.node_id = excluded.node_id AND l.expires_at >= clock_timestamp() THEN l.acquired_at ELSE excluded.acquired_at END
       WHERE l.node_id IS NULL OR l.expires_at < clock_timestamp() OR l.node_id = excluded.node_id
       RETURNING epoch`,
      [jobId, this.nodeId, this.ttlMs],
    );
    return rows.length === 0 ? null : { jobId, nodeId: this.nodeId, epoch: Number(rows[0]!.epoch) };
  }

  /**
   * Extends a held lease by ttl from now. A lease that expired but that no one took since (same
   * epoch) is still ours: nobody else can have driven the job in between.
   * @returns false when another node has taken it (the caller must stop driving the job)
   */
  async renew(lease: Lease): Promise<boolean> {
    const r = await this.pool.query(
      "UPDATE job_leases SET expires_at = clock_timestamp() + $4 * interval '1 millisecond' WHERE job_id = $1 AND node_id = $2 AND epoch = $3",
      [lease.jobId, lease.nodeId, lease.epoch, this.ttlMs],
    );
    return r.rowCount === 1;
  }

  /** Frees a held lease at once (a clean stop), so another node takes the job without waiting for expiry. */
  async release(lease: Lease): Promise<boolean> {
    const r = await this.pool.query('UPDATE job_leases SET node_id = NULL, expires_at = clock_timestamp() WHERE job_id = $1 AND node_id = $2 AND epoch = $3', [lease.jobId, lease.nodeId, lease.epoch]);
    return r.rowCount === 1;
  }

  /** Whether the lease still holds (same node and epoch, not expired). */
  async holds(lease: Lease): Promise<boolean> {
    const { rows } = await this.pool.query('SELECT 1 FROM job_leases WHERE job_id = $1 AND node_id = $2 AND epoch = $3 AND expires_at >= clock_timestamp()', [lease.jobId, lease.nodeId, lease.epoch]);
    return rows.length === 1;
  }

  /** The job's lease row, or null when no node ever took it. */
  async current(jobId: string): Promise<LeaseRow | null> {
    const { rows } = await this.pool.query<{ node_id: string | null; epoch: string; expired: boolean }>('SELECT node_id, epoch, expires_at < clock_timestamp() AS expired FROM job_leases WHERE job_id = $1', [jobId]);
    const row = rows[0];
    return row === undefined ? null : { jobId, nodeId: row.node_id, epoch: Number(row.epoch), expired: row.expired };
  }

  /** The live holder of each leased job (expired and released leases left out). */
  async holders(): Promise<Map<string, string>> {
    const { rows } = await this.pool.query<{ job_id: string; node_id: string }>('SELECT job_id, node_id FROM job_leases WHERE node_id IS NOT NULL AND expires_at >= clock_timestamp()');
    return new Map(rows.map((r) => [r.job_id, r.node_id]));
  }
}
