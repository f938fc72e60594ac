/**
 * A node's side of the job leases (job-lease.ts): every ttl/3 it renews the leases it holds and
 * takes those of active jobs that are free or expired (a released job, a dead node's job, a new
 * job), and says so: `onAcquired` starts driving a job (from its last committed round, as after a
 * restart), `onLost` stops driving one. A held job that is no longer a candidate (it completed or
 * failed) is released, so its row is free at once. A lease whose renewal failed (database unreachable) for
 * longer than ttl since its last renewal is dropped as lost: another node may hold it by then.
 */
import type { JobLeases, Lease } from './job-lease.js';

export interface LeaseKeeperHooks {
  /** The jobs this node may drive (the store's active jobs). */
  candidates(): Promise<string[]>;
  /** This node now holds the job's lease: drive it. */
  onAcquired(lease: Lease): void;
  /** This node no longer holds the job's lease: stop driving it at once. */
  onLost(jobId: string, why: 'taken' | 'expired'): void;
  /** A renewal or scan failed (logged; the keeper goes on). */
  onError?(e: unknown): void;
}

export class LeaseKeeper {
  private readonly held = new Map<string, { lease: Lease; renewedAt: number }>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly leases: JobLeases,
    private readonly hooks: LeaseKeeperHooks,
  ) {}

  /** The lease held on a job, if any. */
  lease(jobId: string): Lease | undefined {
    return this.held.get(jobId)?.lease;
  }

  /** Jobs this node holds. */
  heldJobs(): string[] {
    return [...this.held.keys()];
  }

  /** Runs a first pass now, then one every ttl/3. */
  start(): Promise<void> {
    this.timer = setInterval(() => void this.tick(), Math.max(50, Math.floor(this.leases.ttlMs / 3)));
    this.timer.unref();
    return this.tick();
  }

  /** Tries to take one job's lease now (a job just created here). @returns the lease, or null when another node holds it */
  async tryAcquire(jobId: string): Promise<Lease | null> {
    if (this.stopped) return null;
    const known = this.held.get(jobId);
    if (known !== undefined) return known.lease;
    const lease = await this.leases.acquire(jobId);
    if (lease === null || this.stopped || this.held.has(jobId)) return lease;
    this.held.set(jobId, { lease, renewedAt: Date.now() });
    this.hooks.onAcquired(lease);
    return lease;
  }

  /** One pass: renew what is held, take what is free (never two passes at once). */
  tick(): Promise<void> {
    this.running ??= this.pass().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async pass(): Promise<void> {
    for (const [jobId, h] of [...this.held]) {
      if (this.stopped) return;
      try {
        if (await this.leases.renew(h.lease)) h.renewedAt = Date.now();
        else this.drop(jobId, 'taken');
      } catch (e) {
        this.hooks.onError?.(e);
        if (Date.now() - h.renewedAt > this.leases.ttlMs) this.drop(jobId, 'expired');
      }
    }
    try {
      const candidates = await this.hooks.candidates();
      const active = new Set(candidates);
      for (const jobId of this.heldJobs()) if (!active.has(jobId)) await this.release(jobId);
      for (const jobId of candidates) {
        if (this.stopped) return;
        if (!this.held.has(jobId)) await this.tryAcquire(jobId);
      }
    } catch (e) {
      this.hooks.onError?.(e);
    }
  }

  /** Stops driving a job whose lease this node lost (also: the job ended, release it). */
  private drop(jobId: string, why: 'taken' | 'expired'): void {
    if (!this.held.delete(jobId)) return;
    this.hooks.onLost(jobId, why);
  }

  /** Gives a job's lease back (the job ended): another node need not wait for it to expire. */
  async release(jobId: string): Promise<void> {
    const h = this.held.get(jobId);
    if (h === undefined) return;
    this.held.delete(jobId);
    await this.leases.release(h.lease);
  }

  /** Stops renewing and taking; releases every held lease (a clean stop) unless `release` is false. */
  async stop(release = true): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
    const held = [...this.held.values()];
    this.held.clear();
    if (release) await Promise.all(held.map((h) => this.leases.release(h.lease).catch((e: unknown) => this.hooks.onError?.(e))));
  }
}
