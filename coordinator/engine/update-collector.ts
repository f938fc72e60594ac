/**
 * How a round attempt collects its clients' updates, behind one interface (the way Flower's
 * server only orchestrates and DISCO's secure aggregator is a subclass): plainly, each update
 * opened, validated and added to the running aggregate as it arrives (plain-collector.ts), or
 * through SecAgg+'s exchanges, where the coordinator only sees the unmasked sum
 * (secure-collector.ts). The runner (job-runner.ts) keeps connections, deadlines, retries and
 * commits; it asks the collector, never whether the round is secure.
 *
 * A collector reports back through its CollectorHost: `settle` when it has enough (the runner
 * closes the attempt and commits what `collect` returns), `belowMinimum` when it cannot have.
 * Its receive methods throw a FedloraError for a message to refuse; the runner answers, counts
 * and records the refusal.
 */
import type { Offer, SecAggClientMessage, Update, UpdateAck } from '../../shared/protocol/events.js';
import type { JobSpec } from '../../shared/protocol/job-spec.js';
import type { NonceStore } from '../../privacy/nonces.js';
import type { Store } from '../store/store.js';
import type { CoordinatorMetrics } from '../metrics.js';
import type { Logger } from '../logger.js';
import type { Attempt, Collected, Offered } from './attempt.js';
import type { ClientLink } from './client-link.js';
import type { JobPrivacy } from './job-privacy.js';
import type { SecureStep } from './secure-round.js';
import type { UpdateOpener } from './update-opener.js';
import { PlainCollector } from './plain-collector.js';
import { SecureCollector } from './secure-collector.js';

/** What a collector may use of its runner. */
export interface CollectorHost {
  readonly jobId: string;
  readonly spec: JobSpec;
  readonly store: Store;
  readonly metrics: CoordinatorMetrics;
  readonly log: Logger;
  readonly opener: UpdateOpener;
  /** Replays: refused within an attempt and across restarts (job-runner.ts). */
  readonly nonces: NonceStore;
  readonly privacy: JobPrivacy;
  /** Whether `a` is still the runner's open attempt. */
  isOpen(a: Attempt): boolean;
  /** The client's authenticated connection, if it has one now. */
  link(clientId: string): ClientLink | undefined;
  /** (Re)sends a client its offer of the attempt. */
  sendOffer(link: ClientLink, a: Attempt, plan: Offered['plan']): void;
  /** The job's visible state changed (dashboard feed). */
  changed(): void;
  /** The round's deadline now: the collector's `deadlineReached` from the runner, if `a` is still open. */
  deadlineNow(a: Attempt): void;
  /** Closes `a` and commits what `collect` returns (a failure to aggregate or commit fails the job). */
  settle(a: Attempt, reason: 'quorum' | 'deadline', collect: () => Collected): void;
  /** `a` cannot commit: recorded, then retried or the job failed, as the spec says. */
  belowMinimum(a: Attempt, why: string): void;
}

export interface UpdateCollector {
  /** Updates (masked inputs in a secure round) accepted so far. */
  readonly acceptedCount: number;
  /** The secure round's step; null when collected plainly. */
  readonly secureStep: SecureStep | null;
  /** What the attempt's offers carry besides plan and state. */
  readonly offerFields: Pick<Offer, 'secureAggregation'>;
  /**
   * Starts collecting for `a`, whose offers are made and about to be sent.
   * @throws FedloraError when the offers cannot be collected this way
   */
  start(a: Attempt): void;
  /** A selected client with an open offer reconnected mid-round. */
  clientReturned(link: ClientLink, offered: Offered): void;
  /** A client's connection closed while the attempt is open. */
  clientGone(clientId: string): void;
  /**
   * One selected client's update (the runner checked job, round, attempt and selection).
   * @throws FedloraError with the reason to refuse it
   */
  receiveUpdate(link: ClientLink, offered: Offered, update: Update): Promise<UpdateAck>;
  /**
   * One client's secure aggregation message (the runner checked job and that the attempt is open).
   * @throws FedloraError with the reason to refuse it
   */
  receiveSecAgg(link: ClientLink, m: SecAggClientMessage, bytes: number): void;
  /** The round deadline passed with the attempt open. */
  deadlineReached(): void;
  /** The attempt closed: stop timers; nothing more is sent or reported. */
  stop(): void;
}

/** The job's collector, chosen once from its spec: secure aggregation on or off. */
export function collectorFactory(spec: JobSpec): (host: CollectorHost) => UpdateCollector {
  return spec.secureAggregation.enabled ? (host) => new SecureCollector(host) : (host) => new PlainCollector(host);
}
