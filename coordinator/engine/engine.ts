/** The round engines of every active job, created on demand and resumed from the store at start. */
import type { Store } from '../store/store.js';
import { JobRunner, type RunnerDeps } from './job-runner.js';

export class Engine {
  private readonly runners = new Map<string, JobRunner>();

  constructor(private readonly deps: RunnerDeps) {}

  /** The runner of a job (created from the store on first use); null when the job does not exist. */
  runner(jobId: string): JobRunner | null {
    const existing = this.runners.get(jobId);
    if (existing !== undefined) return existing;
    const job = this.deps.store.getJob(jobId);
    if (job === null) return null;
    const runner = new JobRunner(jobId, this.deps);
    this.runners.set(jobId, runner);
    // A job whose spec lists its modules needs no client to start: its state exists from now on.
    if (job.layout !== null) runner.ensureStarted(job.layout);
    return runner;
  }

  /** Loads the runner of every pending or running job: after a restart they wait for their clients to reconnect. */
  resumeAll(store: Store = this.deps.store): string[] {
    const ids = store.activeJobs().map((j) => j.id);
    for (const id of ids) this.runner(id);
    return ids;
  }

  stop(): void {
    for (const r of this.runners.values()) r.stop();
    this.runners.clear();
  }
}
