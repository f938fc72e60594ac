/**
 * Collects a round through secure aggregation (docs/secure-aggregation.md; secure-round.ts drives
 * SecAgg+'s exchanges): every offered client masks the same flat vector (the plan's update tensors
 * in order), the coordinator only ever holds masked vectors and their sum, aggregates the unmasked
 * sum with the phase (the strategy's `aggregateSummedDeltas`, or Fed-SB's init from the summed
 * gradients), and books distributed DP when the job adds it.
 */
import { FedloraError } from '../../shared/errors.js';
import type { Offer, OfferSecureAggregation, SecAggClientMessage } from '../../shared/protocol/events.js';
import { numel } from '../../shared/tensor.js';
import { secAggConfig, type SecAggConfig, type SecAggResult } from '../../privacy/secagg/index.js';
import type { Attempt, Collected } from './attempt.js';
import type { ClientLink } from './client-link.js';
import { honestClients } from './job-privacy.js';
import { SecureRound, type SecureStep } from './secure-round.js';
import type { CollectorHost, UpdateCollector } from './update-collector.js';

export class SecureCollector implements UpdateCollector {
  private a: Attempt | null = null;
  private round: SecureRound | null = null;
  private offer: OfferSecureAggregation | null = null;

  constructor(private readonly host: CollectorHost) {}

  get acceptedCount(): number {
    return this.round?.masked.size ?? 0;
  }

  get secureStep(): SecureStep | null {
    return this.round?.step ?? null;
  }

  get offerFields(): Pick<Offer, 'secureAggregation'> {
    return this.offer === null ? {} : { secureAggregation: this.offer };
  }

  /**
   * Sets up the attempt's secure round (docs/protocol.md, "Secure rounds").
   * @throws FL_ERR_SECAGG_CONFIG when the offered plans ask for different update tensors
   */
  start(a: Attempt): void {
    this.a = a;
    const { jobId, spec, store, metrics, log } = this.host;
    const plans = [...a.offers.values()].map((o) => o.plan);
    const tensors = plans[0]!.updateTensors;
    const layoutKey = JSON.stringify(tensors);
    if (plans.some((p) => JSON.stringify(p.updateTensors) !== layoutKey)) {
      throw new FedloraError('FL_ERR_SECAGG_CONFIG', 'secure aggregation: the offered plans ask for different update tensors; a secure sum needs one layout for every client');
    }
    const vectorLength = tensors.reduce((s, t) => s + numel(t.shape), 0);
    const clients = [...a.offers.keys()];
    const config = this.config(a, clients, vectorLength);
    const sa = spec.secureAggregation;
    this.offer = {
      context: config.context,
      clients: [...config.clients],
      vectorLength,
      graphSeed: config.graphSeed,
      degree: config.degree,
      threshold: config.threshold,
      minSurvivors: config.minSurvivors,
      clipRange: config.clipRange,
      quantRange: config.quantRange,
      ...(sa.clipNorm !== undefined && { clipNorm: sa.clipNorm }),
      ...(sa.dp !== undefined && { noise: { noiseMultiplier: sa.dp.noiseMultiplier, minHonestClients: honestClients(sa.dp.honestFraction, clients.length) } }),
    };
    this.round = new SecureRound(config, sa.stepTimeoutSeconds * 1000, spec.clientsPerRound, {
      send: (id, step, message) => this.host.link(id)?.emit('secagg', { jobId, round: a.round, attempt: a.attempt, step, message }),
      onResult: (result) => this.finish(result),
      onFailure: (error) => {
        if (!this.host.isOpen(a)) return;
        metrics.secureRounds.inc({ outcome: 'failed' });
        log.warn({ round: a.round, attempt: a.attempt, code: error.code, reason: error.message }, 'secure round failed');
        this.host.belowMinimum(a, `round ${a.round} attempt ${a.attempt}: ${error.message}`);
      },
      onStep: (step, live) => {
        log.debug({ round: a.round, attempt: a.attempt, step, live }, 'secure step closed');
        this.host.changed();
      },
    }, new Map(clients.map((id) => [id, new Uint8Array(Buffer.from(store.getClient(id)!.signPublicKey, 'base64'))])));
  }

  /** Not offered again: a client that left a secure round is out of its sum (docs/protocol.md). */
  clientReturned(): void {}

  clientGone(clientId: string): void {
    this.round?.clientGone(clientId);
  }

  receiveUpdate(): Promise<never> {
    return Promise.reject(new FedloraError('FL_ERR_ROUND_STATE', `round ${this.a!.round} is securely aggregated: send the masked vector through the 'secagg' steps, not an update`));
  }

  receiveSecAgg(link: ClientLink, m: SecAggClientMessage, bytes: number): void {
    const a = this.a!;
    if (m.round !== a.round || m.attempt !== a.attempt) {
      throw new FedloraError('FL_ERR_ROUND_STATE', `secure aggregation message for round ${m.round} attempt ${m.attempt} arrived late or early: round ${a.round} attempt ${a.attempt} is open`);
    }
    if (!a.offers.has(link.clientId)) throw new FedloraError('FL_ERR_ROUND_STATE', `client '${link.clientId}' was not selected for round ${a.round} attempt ${a.attempt}`);
    this.round!.receive(link.clientId, m, bytes);
    this.host.metrics.updateBytes.inc({ status: 'accepted' }, bytes);
  }

  /** The masked-input step closes with what it has; an earlier step fails the attempt. */
  deadlineReached(): void {
    this.round!.deadlineReached();
  }

  stop(): void {
    this.round?.stop();
  }

  private config(a: Attempt, clients: string[], vectorLength: number): SecAggConfig {
    const { jobId, spec } = this.host;
    const sa = spec.secureAggregation;
    const n = clients.length;
    const settings = {
      context: `fedlora/${jobId}/${a.phase.label}/attempt-${a.attempt}`,
      clients,
      vectorLength,
      graphSeed: `${spec.seed}/${a.phase.label}/${a.attempt}`,
      // a spec's degree above what this round's n allows means "everyone"
      ...(sa.degree !== undefined && { degree: Math.min(sa.degree, n - 1) }),
      ...(sa.threshold !== undefined && { threshold: sa.threshold }),
      clipRange: sa.clipRange,
      quantRange: sa.quantRange,
    };
    const defaults = secAggConfig(settings);
    // never fewer than the job's own minimum in a sum
    return secAggConfig({ ...settings, minSurvivors: Math.min(n, Math.max(spec.minClients, sa.minSurvivors ?? defaults.minSurvivors)) });
  }

  /** The unmasked sum: the survivors' records, then the runner closes the attempt and commits. */
  private finish(result: SecAggResult): void {
    const a = this.a!;
    if (!this.host.isOpen(a)) return;
    const now = Date.now();
    for (const id of result.survivors) {
      const offered = a.offers.get(id);
      if (offered !== undefined) offered.status = 'accepted';
      a.records.push({ clientId: id, attempt: a.attempt, status: 'accepted', bytes: this.round!.uploadBytes.get(id) ?? 0, receivedAt: now });
    }
    this.host.settle(a, 'quorum', () => this.collect(result));
  }

  private collect(result: SecAggResult): Collected {
    const a = this.a!;
    const { spec, privacy } = this.host;
    this.host.metrics.secureRounds.inc({ outcome: 'committed' });
    const survivors = result.survivors;
    const tensors = a.offers.values().next().value!.plan.updateTensors;
    const dropped = result.dropped.advertise.length + result.dropped.shareKeys.length + result.dropped.maskedInput.length;
    const sa = spec.secureAggregation;
    // distributed DP: a fixed denominator (as DP-FedAvg), never the survivors, whose number moves with one client's presence
    const divisor = sa.dp !== undefined ? spec.clientsPerRound : survivors.length;
    const aggregated = a.phase.fromSecureSum(result.sum, tensors, survivors.length, divisor);
    const metrics: Record<string, number> = {
      clients: survivors.length,
      secure_aggregation: 1,
      secagg_dropped: dropped,
      // gone after their masked vector: before signing the survivor view or before revealing shares
      secagg_unmask_dropped: result.dropped.consistency.length + result.dropped.unmasking.length,
      secagg_bad_shares: result.badShares.length,
      // on the average: |avg - true avg| per coordinate, for inputs inside the clipping range
      secagg_error_bound: result.errorBound / survivors.length,
    };
    let zEff: number | null = null;
    if (sa.dp !== undefined) {
      zEff = privacy.secureMultiplier(a.offers.size, survivors.length);
      metrics.dp_clip_norm = sa.clipNorm!;
      metrics.secagg_noise_multiplier = zEff;
      metrics.dp_noise_std = (zEff * sa.clipNorm!) / divisor;
    }
    this.host.log.info({ round: a.round, phase: a.phase.kind, survivors: survivors.length, dropped, badShares: result.badShares }, 'secure sum unmasked');
    return { participants: survivors, result: aggregated, metrics, bookPrivacy: () => (zEff === null ? null : privacy.bookSecureRound(a.round, a.sampling, zEff)) };
  }
}
