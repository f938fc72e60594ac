/**
 * Collects a round's updates plainly: each one is opened off the event loop (update-opener.ts),
 * checked (binding, signature, replay, names, shapes, values, size) and added to the running
 * aggregate as it arrives; the attempt settles at quorum, or at the deadline with the minimum.
 */
import { FedloraError } from '../../shared/errors.js';
import type { Offer, SecAggClientMessage, Update, UpdateAck } from '../../shared/protocol/events.js';
import type { ClientUpdate, RoundAggregation, RoundResult } from '../../aggregation/strategy.js';
import type { Attempt, Collected, Offered } from './attempt.js';
import type { ClientLink } from './client-link.js';
import type { CollectorHost, UpdateCollector } from './update-collector.js';

interface Accepted {
  /** The client's deterministic key (plan-wiring.ts clientKey): the order of aggregation. */
  readonly key: string;
  /** The update itself only with `deterministicAggregation`, to re-aggregate in key order (finishAggregation). */
  readonly update?: ClientUpdate;
  readonly examples: number;
  readonly metrics: Readonly<Record<string, number>>;
}

export class PlainCollector implements UpdateCollector {
  readonly secureStep = null;
  readonly offerFields: Pick<Offer, 'secureAggregation'> = {};
  private a: Attempt | null = null;
  private aggregation: RoundAggregation | null = null;
  /** Accepted updates with their clients' keys: a few numbers each, the update itself as above. */
  private readonly accepted: Accepted[] = [];

  constructor(private readonly host: CollectorHost) {}

  get acceptedCount(): number {
    return this.aggregation?.count ?? 0;
  }

  start(a: Attempt): void {
    this.a = a;
    this.aggregation = a.phase.begin();
  }

  /** Its offer again: it may have lost the first one with its connection. */
  clientReturned(link: ClientLink, offered: Offered): void {
    this.host.sendOffer(link, this.a!, offered.plan);
  }

  clientGone(): void {
    this.checkCanStillFinish();
  }

  async receiveUpdate(link: ClientLink, offered: Offered, update: Update): Promise<UpdateAck> {
    const a = this.a!;
    const aggregation = this.aggregation!;
    const { jobId, spec, metrics } = this.host;
    const bytes = update.envelope.length;
    if (bytes > a.maxUpdateBytes) {
      throw new FedloraError('FL_ERR_UPDATE_TOO_LARGE', `update of ${bytes} bytes is over this round's limit of ${a.maxUpdateBytes} bytes (the plan's tensors plus overhead)`);
    }
    const decoded = await this.host.opener.open({
      envelope: update.envelope,
      expected: { jobId, round: a.round, attempt: a.attempt, clientId: link.clientId },
      signPublicKey: link.signPublicKey,
      plan: offered.plan,
      source: link.clientId,
      maxBytes: a.maxUpdateBytes,
    });
    if (!this.host.isOpen(a)) throw new FedloraError('FL_ERR_ROUND_STATE', `round ${a.round} attempt ${a.attempt} closed while the update was being opened`);
    // Replays are checked here, on the one thread that records nonces, after the signature held.
    if (!(await this.host.nonces.checkAndAdd({ jobId, round: a.round, clientId: link.clientId, nonce: decoded.nonce }))) {
      throw new FedloraError('FL_ERR_ENVELOPE_REPLAY', `envelope nonce ${decoded.nonce} of client '${link.clientId}' was already used in job '${jobId}'`);
    }
    if (offered.status === 'accepted') throw new FedloraError('FL_ERR_ROUND_STATE', `client '${link.clientId}' already has an accepted update in round ${a.round}`);
    // Quorum reached while this one was being opened: the round closes on the next tick with
    // exactly clientsPerRound updates (DP-FedAvg divides by that number).
    if (aggregation.count >= spec.clientsPerRound) throw new FedloraError('FL_ERR_ROUND_STATE', `round ${a.round} attempt ${a.attempt} already has its ${spec.clientsPerRound} updates (quorum reached while this one was being opened)`);
    aggregation.add(decoded.update);
    this.accepted.push({ key: offered.key, ...(spec.deterministicAggregation && { update: decoded.update }), examples: decoded.update.numExamples, metrics: decoded.metrics });
    offered.status = 'accepted';
    const now = Date.now();
    a.lastAcceptedAt = now;
    a.examples += decoded.update.numExamples;
    a.records.push({ clientId: link.clientId, attempt: a.attempt, status: 'accepted', bytes, examples: decoded.update.numExamples, receivedAt: now });
    a.nonces.push({ nonce: decoded.nonce, clientId: link.clientId });
    metrics.updatesAccepted.inc();
    this.host.changed();
    metrics.updateBytes.inc({ status: 'accepted' }, bytes);
    this.host.log.debug({ clientId: link.clientId, round: a.round, examples: decoded.update.numExamples, bytes }, 'update accepted');
    if (aggregation.count >= spec.clientsPerRound) setImmediate(() => this.host.settle(a, 'quorum', () => this.collect()));
    else this.checkCanStillFinish();
    return { ok: true, jobId, round: a.round };
  }

  receiveSecAgg(_link: ClientLink, m: SecAggClientMessage): void {
    throw new FedloraError('FL_ERR_ROUND_STATE', `secure aggregation message for round ${m.round} attempt ${m.attempt} arrived late or early: round ${this.a!.round} is not securely aggregated`);
  }

  deadlineReached(): void {
    const a = this.a!;
    const { minClients } = this.host.spec;
    if (this.acceptedCount >= minClients) this.host.settle(a, 'deadline', () => this.collect());
    else this.host.belowMinimum(a, `round ${a.round} attempt ${a.attempt} got ${this.acceptedCount} valid updates, below the minimum of ${minClients}`);
  }

  stop(): void {}

  /** Ends the attempt early when no selected client that could still send is connected. */
  private checkCanStillFinish(): void {
    const a = this.a!;
    const waiting = [...a.offers].some(([id, o]) => o.status === 'offered' && this.host.link(id) !== undefined);
    if (!waiting) setImmediate(() => this.host.deadlineNow(a));
  }

  private collect(): Collected {
    const a = this.a!;
    const participants = a.records.filter((r) => r.status === 'accepted').map((r) => r.clientId!);
    const result = this.finishAggregation();
    const metrics: Record<string, number> = { clients: participants.length, examples: a.examples };
    // Summed in key order, like the aggregate, so the means do not depend on arrival order either.
    const metricSums = new Map<string, number>();
    for (const u of inKeyOrder(this.accepted)) for (const [k, v] of Object.entries(u.metrics)) metricSums.set(k, (metricSums.get(k) ?? 0) + v * u.examples);
    for (const [k, sum] of metricSums) metrics[k] = sum / a.examples;
    if (result.report.noise !== undefined) metrics.aggregation_noise = result.report.noise.overall;
    const dpReport = (result.report as { dp?: { clipNorm: number; clippedUpdates: number; noiseStdOnAverage: number } }).dp;
    if (dpReport !== undefined) {
      metrics.dp_clip_norm = dpReport.clipNorm;
      metrics.dp_clipped_updates = dpReport.clippedUpdates;
      metrics.dp_noise_std = dpReport.noiseStdOnAverage;
    }
    return { participants, result, metrics, bookPrivacy: () => this.host.privacy.bookUserRound(a.round, a.sampling) };
  }

  /**
   * The attempt's aggregate, independent of the order its updates arrived in: float sums and
   * FLoRA's stacking depend on the order of addition (up to rounding), and arrival order follows
   * thread and network timing. When the updates did not arrive in key order they are added again,
   * in key order, to a fresh aggregation (the running one has already validated each of them).
   */
  private finishAggregation(): RoundResult {
    const aggregation = this.aggregation!;
    // Streaming by default: the running sum, in arrival order (equal to key order up to rounding).
    if (!this.host.spec.deterministicAggregation) return aggregation.finish();
    const sorted = inKeyOrder(this.accepted);
    if (sorted.every((u, i) => u === this.accepted[i])) return aggregation.finish();
    const fresh = this.a!.phase.begin();
    for (const u of sorted) fresh.add(u.update!);
    return fresh.finish();
  }
}

/** A copy of accepted updates sorted by their clients' keys. */
function inKeyOrder<T extends { readonly key: string }>(accepted: readonly T[]): T[] {
  return [...accepted].sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
}
