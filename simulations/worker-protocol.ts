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

export interface WorkerInput {
  readonly url: string;
  readonly jobId: string;
  readonly modelDir: string;
  readonly featureNames: readonly string[];
  readonly backend: BackendName;
  readonly clients: readonly WorkerClient[];
  /** Probability that a client leaves a round it was offered. */
  readonly dropout: number;
  /** ms before a dropped client rejoins when no later round has started. */
  readonly rejoinMs: number;
  readonly seed: number;
}

export type WorkerMessage =
  | { readonly type: 'started'; readonly clients: number; readonly backend: string }
  | { readonly type: 'offer'; readonly client: number; readonly round: number }
  | { readonly type: 'dropped'; readonly client: number; readonly round: number }
  | { readonly type: 'summary'; readonly client: number; readonly summary: AgentSummary }
  | { readonly type: 'error'; readonly client: number; readonly code: string; readonly message: string };
