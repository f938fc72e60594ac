/**
 * The coordinator's Prometheus metrics (`GET /metrics`), on a registry of its own so two
 * coordinators in one process (tests) never share counters.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class CoordinatorMetrics {
  readonly registry = new Registry();
  /** Rounds by outcome: `committed`, `retried` (below the minimum at the deadline), `failed`. */
  readonly rounds = new Counter({ name: 'fedlora_rounds_total', help: 'Rounds ended, by outcome', labelNames: ['outcome'] as const, registers: [this.registry] });
  readonly secureRounds = new Counter({ name: 'fedlora_secure_rounds_total', help: 'Securely aggregated round attempts ended, by outcome', labelNames: ['outcome'] as const, registers: [this.registry] });
  readonly updatesAccepted = new Counter({ name: 'fedlora_updates_accepted_total', help: 'Updates accepted into a round', registers: [this.registry] });
  readonly updatesRefused = new Counter({
    name: 'fedlora_updates_refused_total',
    help: 'Updates refused, by reason code (FL_ERR_...)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly updateBytes = new Counter({ name: 'fedlora_update_bytes_total', help: 'Bytes of update envelopes received, by status', labelNames: ['status'] as const, registers: [this.registry] });
  readonly offerBytes = new Counter({ name: 'fedlora_offer_bytes_total', help: 'Bytes of global state sent in offers', registers: [this.registry] });
  readonly offers = new Counter({ name: 'fedlora_offers_total', help: 'Offers sent (fedlora_offer_bytes_total / this = bytes of state per offer)', registers: [this.registry] });
  readonly roundDuration = new Histogram({
    name: 'fedlora_round_duration_seconds',
    help: 'Seconds from a round attempt\'s offers to its commit',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800],
    registers: [this.registry],
  });
  readonly roundOverhead = new Histogram({
    name: 'fedlora_round_overhead_seconds',
    help: 'Coordinator seconds from the last accepted update of a round to the next round\'s offers (aggregate, commit, select, plan)',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly connectedClients = new Gauge({ name: 'fedlora_connected_clients', help: 'Authenticated client connections', registers: [this.registry] });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'fedlora_' });
  }
}
