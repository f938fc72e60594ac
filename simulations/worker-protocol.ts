/** Messages between the sim's driver and its agent worker threads (agent-worker.ts). */
import type { AgentSummary } from '../client/agent/summary.js';
import type { BackendName } from '../client/backend.js';

/** One simulated client: its enrolment token, state folder and data rows. */
export interface WorkerClient {
  readonly index: number;
  readonly token: string;
  readonly stateDir: string;
  /** [rows, features], row-major. */
  readonly features: Float32Array;
  readonly labels: Int32Array;
}

/** Given once when the worker starts: what every job shares. */
export interface WorkerSetup {
  readonly modelDir: string;
  readonly backend: BackendName;
}

/** One job's clients for this worker. */
export interface WorkerJob {
  readonly type: 'job';
  readonly url: string;
  readonly jobId: string;
  readonly featureNames: readonly string[];
  readonly clients: readonly WorkerClient[];
  /** Probability that a client leaves a round it was offered. */
  readonly dropout: number;
  /** ms before a dropped client rejoins when no later round has started. */
  readonly rejoinMs: number;
  readonly seed: number;
}

/** The driver saw a round of the job commit: dropped clients rejoin. */
export interface WorkerCommitted {
  readonly type: 'committed';
  readonly jobId: string;
  readonly round: number;
}

export type WorkerMessage =
  | { readonly type: 'ready'; readonly backend: string }
  | { readonly type: 'fatal'; readonly code: string; readonly message: string }
  | { readonly type: 'offer'; readonly jobId: string; readonly client: number; readonly round: number }
  | { readonly type: 'dropped'; readonly jobId: string; readonly client: number; readonly round: number }
  /** A line of the agent worth showing: a failed round, a refused update. */
  | { readonly type: 'note'; readonly jobId: string; readonly client: number; readonly line: string }
  /** A client that had dropped out when the job ended (it has no summary). */
  | { readonly type: 'left'; readonly jobId: string; readonly client: number }
  | { readonly type: 'summary'; readonly jobId: string; readonly client: number; readonly summary: AgentSummary }
  | { readonly type: 'error'; readonly jobId: string; readonly client: number; readonly code: string; readonly message: string };
