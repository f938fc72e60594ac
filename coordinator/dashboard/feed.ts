/**
 * The dashboard's live feed (shared/protocol/dashboard.ts): a socket.io namespace behind the admin
 * token that sends a snapshot of the jobs on connection and each job again when it changes
 * (coalesced to at most one message per job every `throttleMs`).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Namespace, Server } from 'socket.io';
import { DASHBOARD_NAMESPACE, type DashboardServerEvents, type LiveJob, type Snapshot } from '../../shared/protocol/dashboard.js';
import type { Store } from '../store/store.js';
import type { Engine } from '../engine/engine.js';
import type { Logger } from '../logger.js';
import { jobView } from '../jobs.js';

/** Jobs in a snapshot: every pending or running one plus the most recent ended ones, up to this many. */
const SNAPSHOT_JOBS = 20;

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

export class DashboardFeed {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly ns: Namespace<Record<string, never>, DashboardServerEvents>;

  constructor(
    io: Server,
    private readonly deps: { store: Store; engine: () => Engine; adminToken: string; logger: Logger },
    private readonly throttleMs = 200,
  ) {
    const expected = digest(deps.adminToken);
    this.ns = io.of(DASHBOARD_NAMESPACE) as unknown as Namespace<Record<string, never>, DashboardServerEvents>;
    this.ns.use((socket, next) => {
      const token: unknown = (socket.handshake.auth as Record<string, unknown> | undefined)?.token;
      if (typeof token === 'string' && timingSafeEqual(digest(token), expected)) next();
      else next(new Error('FL_ERR_UNAUTHORIZED: the dashboard needs the admin token as auth.token'));
    });
    this.ns.on('connection', (socket) => {
      try {
        socket.emit('snapshot', { jobs: this.snapshotJobs() });
      } catch (e) {
        this.deps.logger.error({ err: e }, 'dashboard snapshot failed');
      }
    });
  }

  /** A job as the dashboard shows it: the API view, the round in progress, refusals by reason. */
  liveJob(jobId: string): LiveJob {
    const runner = this.deps.engine().runner(jobId);
    const view = jobView(this.deps.store, jobId, (clientId) => runner?.isConnected(clientId) ?? false);
    return { ...view, current: runner?.currentRound ?? null, refusedByReason: this.deps.store.refusalsByReason(jobId) };
  }

  /** The snapshot the feed sends on connection (also `GET /api/dashboard`). */
  snapshot(): Snapshot {
    return { jobs: this.snapshotJobs() };
  }

  private snapshotJobs(): LiveJob[] {
    const jobs = this.deps.store.listJobs();
    const active = jobs.filter((j) => j.status === 'pending' || j.status === 'running');
    const ended = jobs.filter((j) => j.status === 'completed' || j.status === 'failed');
    return [...active, ...ended].slice(0, Math.max(SNAPSHOT_JOBS, active.length)).map((j) => this.liveJob(j.id));
  }

  /** Schedules a `job` message for this job (coalescing bursts). */
  jobChanged(jobId: string): void {
    if (this.timers.has(jobId) || this.ns.sockets.size === 0) return;
    this.timers.set(
      jobId,
      setTimeout(() => {
        this.timers.delete(jobId);
        try {
          if (this.deps.store.isOpen) this.ns.emit('job', this.liveJob(jobId));
        } catch (e) {
          this.deps.logger.error({ err: e, jobId }, 'dashboard update failed');
        }
      }, this.throttleMs),
    );
  }

  stop(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
