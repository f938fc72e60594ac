/** Messages between the sim's driver and its agent worker threads (agent-worker.ts). */
import type { AgentSummary } from '../client/agent/summary.js';
import type { BackendName } from '../client/backend.js';
import type { PerplexityResult } from './perplexity.js';
import type { PackedSequences } from './token-sequences.js';

/** One simulated client: its enrolment token, state folder and data rows. */
export interface WorkerClient {
  readonly index: number;
  readonly token: string;
  readonly stateDir: string;
  /** [rows, features], row-major (the mlp; empty for the language task). */
  readonly features: Float32Array;
  readonly labels: Int32Array;
  /** The language task: the client's token sequences (the llama trains on these instead of features). */
  readonly sequences?: PackedSequences;
}

/** How the agents of a language job turn sequences into next-token examples (client/data/batches.ts tokenSource). */
export interface WorkerTokens {
  readonly seqLen: number;
  readonly padId: number;
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
  /** The language task: clients carry `sequences`. */
  readonly tokens?: WorkerTokens;
}

/**
 * A baseline of the language task, trained in a worker without the coordinator: LoRA on one
 * client's data (local-only) or on the union (centralised), `rounds` x `epochs` passes with a fresh
 * AdamW each round, exactly as an agent trains a round (so local-only is FedAvg with one client),
 * then evaluated on every test set.
 */
export interface WorkerBaseline {
  readonly type: 'baseline';
  readonly id: number;
  readonly train: PackedSequences;
  readonly tests: ReadonlyArray<{ readonly name: string; readonly sequences: PackedSequences }>;
  readonly tokens: WorkerTokens;
  readonly lora: { readonly rank: number; readonly alpha: number; readonly modules: readonly string[]; readonly seed: number };
  readonly training: { readonly rounds: number; readonly epochs: number; readonly batchSize: number; readonly lr: number };
}

export interface BaselineOutcome {
  readonly result: PerplexityResult;
  readonly steps: number;
  /** Mean training loss of the last round's steps. */
  readonly trainLoss: number;
  readonly seconds: number;
}

/** The driver saw a round of the job commit: dropped clients rejoin. */
export interface WorkerCommitted {
  readonly type: 'committed';
  readonly jobId: string;
  readonly round: number;
}

/** `message` of fatal and error replies: the reason, without a code prefix (reasonOf); the code travels in `code`. */
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
  | { readonly type: 'error'; readonly jobId: string; readonly client: number; readonly code: string; readonly message: string }
  | { readonly type: 'baseline-done'; readonly id: number; readonly outcome: BaselineOutcome }
  | { readonly type: 'baseline-error'; readonly id: number; readonly code: string; readonly message: string };
