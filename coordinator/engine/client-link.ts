/** What the round engine knows of one authenticated client connection (the transport makes it). */
import type { ServerToClientEvents } from '../../shared/protocol/events.js';

export interface ClientLink {
  readonly clientId: string;
  readonly jobId: string;
  /** 0-based enrolment order in the job. */
  readonly enrolmentIndex: number;
  /**
   * 0-based creation index of its enrolment token in the job: the deterministic key its rank (from
   * the job's `ranks`), round seeds and place in aggregation derive from.
   */
  readonly tokenIndex: number;
  /** Ed25519 public key the client enrolled with. */
  readonly signPublicKey: Uint8Array;
  /** Backend name and device, for logs and the dashboard. */
  readonly backend: string;
  emit<E extends keyof ServerToClientEvents>(event: E, ...args: Parameters<ServerToClientEvents[E]>): void;
  /** Closes the connection (after a job ends). */
  close(): void;
}
