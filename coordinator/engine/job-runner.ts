/**
 * The round engine of one job (docs/architecture.md, "One round, end to end"): it starts the job's global
 * state, selects clients (seeded, over-selecting), offers each its plan and the global state,
 * lets the attempt's collector take the updates (plain-collector.ts, secure-collector.ts; bad ones
 * refused with a code while the round goes on), commits at quorum or at the deadline with the
 * minimum in one transaction, and starts the next; below the minimum it retries or fails the job
 * as the spec says. After a restart it continues from the store's last committed round.
 *
 * The runner keeps connections, deadlines, retries and commits; what an attempt aggregates into
 * is its phase (round-phase.ts, or fedsb-init-phase.ts before round 0), its offers come from
 * plan-wiring.ts and its privacy spends from job-privacy.ts (docs/architecture.md, "The round engine").
 *
 * One runner per job; all of its state changes happen on the event loop between awaits, and every
 * continuation after an await re-checks that its round attempt is still the current one.
 */
import { FedloraError, isFedloraError } from '../../shared/errors.js';
import type { Plan, SecAggAck, SecAggClientMessage, Update, UpdateAck } from '../../shared/protocol/events.js';
import { clientRank, offeredPerRound, type JobSpec, type ModuleShape } from '../../shared/protocol/job-spec.js';
import type { ClientInfo, GlobalState, Strategy } from '../../aggregation/strategy.js';
import { MemoryNonceStore, type NonceKey, type NonceStore } from '../../privacy/nonces.js';
import type { KeyPairs } from '../../privacy/keys.js';
import { serializeLedger, type LedgerState } from '../../privacy/ledger.js';
import { clientSampling, drawClients, drawFixedSize } from '../../privacy/client-sampling.js';
import type { Store } from '../store/store.js';
import type { CoordinatorMetrics } from '../metrics.js';
import type { Logger } from '../logger.js';
import { decodeGlobalState, encodeGlobalState } from '../state-codec.js';
import { jobStrategy, rankCaps, strategySpecOf } from '../jobs.js';
import type { Attempt, AttemptPhase, Collected, Committer } from './attempt.js';
import type { ClientLink } from './client-link.js';
import { FedSbInitPhase, usesGradientInit } from './fedsb-init-phase.js';
import { JobPrivacy } from './job-privacy.js';
import { clientKey, wireOffers } from './plan-wiring.js';
import { RoundPhase } from './round-phase.js';
import type { SecureStep } from './secure-round.js';
import { selectClients } from './selection.js';
import { collectorFactory, type CollectorHost, type UpdateCollector } from './update-collector.js';
import type { UpdateOpener } from './update-opener.js';

export interface RunnerDeps {
  readonly store: Store;
  readonly keys: KeyPairs;
  /** Opens and decodes envelopes (in worker threads or inline). */
  readonly opener: UpdateOpener;
  readonly metrics: CoordinatorMetrics;
  readonly logger: Logger;
  /** Told whenever the job's visible state changes (dashboard feed). */
  readonly onChange?: (jobId: string) => void;
  /** ms to wait with minClients (but fewer than the over-selected count) connected before starting a round. */
  readonly startGraceMs: number;
  /** Seeded (reproducible) selection instead of the secret draw: `fedlora sim` only; books q = 1. @default false */
  readonly seededSelection?: boolean;
}

/** Refused updates of one client recorded per attempt (the rest are only counted and logged). */
export const MAX_REFUSALS_RECORDED = 32;

export class JobRunner implements Committer {
  readonly jobId: string;
  private readonly spec: JobSpec;
  private readonly strategy: Strategy;
  private readonly deps: RunnerDeps;
  private readonly log: Logger;
  private readonly privacy: JobPrivacy;
  private readonly newCollector: (host: CollectorHost) => UpdateCollector;
  private readonly host: CollectorHost;
  private readonly links = new Map<string, ClientLink>();
  /** FLoRA: per client key, the rounds it has merged (known from its accepted updates; reset when it reconnects). */
  private readonly floraMerged = new Map<string, number>();
  private readonly nonces: NonceStore;
  private readonly memoryNonces = new MemoryNonceStore();
  private state: GlobalState | null = null;
  private layout: ModuleShape[] | null;
  private round: number;
  private current: Attempt | null = null;
  private graceTimer: NodeJS.Timeout | undefined;
  private ended = false;

  constructor(jobId: string, deps: RunnerDeps) {
    const job = deps.store.requireJob(jobId);
    this.jobId = jobId;
    this.spec = job.spec;
    this.deps = deps;
    this.log = deps.logger.child({ jobId });
    this.strategy = jobStrategy(job.spec);
    this.privacy = new JobPrivacy(jobId, job.spec, deps.store);
    this.newCollector = collectorFactory(job.spec);
    this.layout = job.layout;
    this.round = job.round;
    this.ended = job.status === 'completed' || job.status === 'failed';
    const stored = deps.store.latestState(jobId);
    if (stored !== null) this.state = decodeGlobalState(stored);
    // Replays are refused within an attempt by the memory store and across restarts by the
    // attempt binding (a fresh attempt number after every restart) plus the committed nonces.
    const memory = this.memoryNonces;
    const store = deps.store;
    this.nonces = {
      has: (k: NonceKey) => memory.has(k) || store.isNonceUsed(k.jobId, k.nonce),
      checkAndAdd: (k: NonceKey) => !store.isNonceUsed(k.jobId, k.nonce) && memory.checkAndAdd(k),
    };
    this.host = {
      jobId,
      spec: this.spec,
      store: deps.store,
      metrics: deps.metrics,
      log: this.log,
      opener: deps.opener,
      nonces: this.nonces,
      privacy: this.privacy,
      isOpen: (a) => !a.closed && this.current === a,
      link: (id) => this.links.get(id),
      sendOffer: (link, a, plan) => this.sendOffer(link, a, plan),
      changed: () => this.changed(),
      deadlineNow: (a) => this.onDeadline(a),
      settle: (a, reason, collect) => this.settle(a, reason, collect),
      belowMinimum: (a, why) => this.belowMinimum(a, why),
    };
  }

  /** The job's module layout, once fixed (the transport checks hellos against it). */
  get knownLayout(): readonly ModuleShape[] | null {
    return this.layout;
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** Whether this client has an authenticated connection now. */
  isConnected(clientId: string): boolean {
    return this.links.has(clientId);
  }

  /** Connected, authenticated clients. */
  get connectedCount(): number {
    return this.links.size;
  }

  /** The round in progress, for views and tests. */
  get currentRound(): { round: number; attempt: number; selected: string[]; accepted: number; secureStep: SecureStep | null } | null {
    const a = this.current;
    if (a === null) return null;
    return { round: a.round, attempt: a.attempt, selected: [...a.offers.keys()], accepted: a.collector.acceptedCount, secureStep: a.collector.secureStep };
  }

  // ------------------------------------------------------------------ clients

  /**
   * An authenticated client joined (or came back). A pending job whose layout comes from its
   * clients starts with this one's modules.
   */
  clientConnected(link: ClientLink, modules: readonly ModuleShape[]): void {
    if (this.ended) {
      link.emit('job_end', this.jobEnd());
      return;
    }
    const previous = this.links.get(link.clientId);
    if (previous !== undefined && previous !== link) previous.close();
    this.links.set(link.clientId, link);
    // FLoRA: a (re)connected agent may have lost what it merged; its next offer holds every round
    this.floraMerged.delete(clientKey(link.tokenIndex));
    this.ensureStarted(modules);
    this.changed();
    // A selected client that reconnects mid-round: its collector may offer again.
    const offered = this.current?.offers.get(link.clientId);
    if (offered !== undefined && offered.status === 'offered') this.current!.collector.clientReturned(link, offered);
    this.maybeStartRound();
  }

  clientDisconnected(link: ClientLink): void {
    if (this.links.get(link.clientId) !== link) return;
    this.links.delete(link.clientId);
    this.changed();
    const a = this.current;
    if (a !== null && !a.closed) a.collector.clientGone(link.clientId);
  }

  /**
   * Creates the initial global state of a pending job, from its spec's modules or else from
   * these (the first authenticated client's); nothing when it has one.
   */
  ensureStarted(modules: readonly ModuleShape[]): void {
    if (this.state !== null || this.ended) return;
    const layout = this.layout ?? [...modules];
    if (usesGradientInit(this.spec)) {
      // The initial state comes from the clients' gradients (init phase); the layout is fixed now.
      this.layout = layout;
      return;
    }
    try {
      for (const c of rankCaps(this.spec.rank, layout)) this.log.info({ module: c.path, rank: c.rank, cap: c.cap }, c.message);
      const state = this.strategy.init(strategySpecOf(this.spec, layout), String(this.spec.seed));
      this.deps.store.startJob(this.jobId, layout, encodeGlobalState(state));
      this.state = state;
      this.layout = layout;
      this.log.info({ modules: layout.length, strategy: this.spec.strategy }, 'job started');
    } catch (e) {
      this.fail(`cannot create the initial global state: ${(e as Error).message}`);
    }
  }

  /**
   * What the next attempt aggregates into: a round of the strategy over the global state, or
   * Fed-SB's init phase while the job awaits its initial state; null when neither can run yet.
   */
  private nextPhase(): AttemptPhase | null {
    if (this.state !== null) return new RoundPhase(this.strategy, this.state, this.round, this.privacy);
    if (this.awaitingInit) return new FedSbInitPhase(this.spec, this.layout!, this.privacy);
    return null;
  }

  /** Pending job whose initial state the init phase has still to make. */
  private get awaitingInit(): boolean {
    return this.state === null && this.layout !== null && usesGradientInit(this.spec);
  }

  // ------------------------------------------------------------------ rounds

  private maybeStartRound(): void {
    if (this.ended || this.current !== null || (this.state === null && !this.awaitingInit)) return;
    const connected = this.links.size;
    // Start at once with enough clients to over-select, or, after the first round (while clients
    // are still joining), with a quorum when every client the job has enrolled is connected:
    // waiting would gain no one. With fewer (but the minimum), after a grace period for the others
    // to (re)connect.
    const everyone = this.round > 0 && connected >= this.spec.clientsPerRound && connected >= this.deps.store.clientsOfJob(this.jobId).length;
    if (connected >= offeredPerRound(this.spec) || everyone) {
      this.clearGrace();
      this.startAttempt();
    } else if (connected >= this.spec.minClients && this.graceTimer === undefined) {
      this.graceTimer = setTimeout(() => {
        this.graceTimer = undefined;
        if (this.current === null && this.links.size >= this.spec.minClients) this.startAttempt();
      }, this.deps.startGraceMs);
    } else if (connected < this.spec.minClients) {
      this.clearGrace();
    }
  }

  private clearGrace(): void {
    if (this.graceTimer !== undefined) clearTimeout(this.graceTimer);
    this.graceTimer = undefined;
  }

  /** Starts an attempt; a failure to plan or offer fails the job with the reason rather than throwing into a socket handler. */
  private startAttempt(): void {
    try {
      this.startAttemptUnguarded();
    } catch (e) {
      this.log.error({ err: e }, 'round could not start');
      if (this.current !== null) this.closeAttempt(this.current, 'job_ended');
      this.fail(`round ${this.round} could not start: ${(e as Error).message}`);
    }
  }

  private startAttemptUnguarded(): void {
    const phase = this.ended ? null : this.nextPhase();
    if (phase === null) return;
    const round = this.round;
    const startedAt = Date.now();
    const want = offeredPerRound(this.spec);
    // the population the draw runs over, and the rate the ledger books for it
    const sampling = clientSampling(Math.max(1, this.links.size), want, this.deps.seededSelection === true);
    try {
      phase.checkBudget(sampling, Math.min(want, this.links.size));
    } catch (e) {
      if (isFedloraError(e, 'FL_ERR_BUDGET_EXCEEDED')) {
        this.fail(`privacy budget exhausted before round ${round}: ${e.message}`);
        return;
      }
      throw e;
    }
    const attempt = this.deps.store.beginAttempt(this.jobId, startedAt);
    // Seeded selection runs over the clients' token keys, not their random ids, so the same seed picks the same clients in any connection order.
    const byKey = new Map([...this.links.values()].map((l) => [clientKey(l.tokenIndex), l.clientId]));
    const keys = [...byKey.keys()].sort();
    // user-level DP needs the independent (Poisson) draw its accountant assumes; other jobs draw a fixed number, secretly too
    const drawn = sampling.kind === 'seeded' ? selectClients(keys, want, this.spec.seed, round, attempt) : this.privacy.userLevel ? drawClients(keys, sampling) : drawFixedSize(keys, want);
    const selected = drawn.map((key) => byKey.get(key)!);
    const infos: ClientInfo[] = selected.map((id) => {
      const link = this.links.get(id)!;
      return this.spec.ranks === undefined ? { id } : { id, rank: clientRank(this.spec, link.tokenIndex) };
    });
    const { offers, maxUpdateBytes, stateBytes } = wireOffers(this.spec, phase, this.state, phase.plans(infos), round, (id) => clientKey(this.links.get(id)!.tokenIndex), this.floraMerged, this.privacy.delta);
    const deadline = startedAt + this.spec.roundDeadlineSeconds * 1000;
    const current: Attempt = {
      phase,
      round,
      attempt,
      startedAt,
      deadline,
      offers,
      collector: this.newCollector(this.host),
      records: [],
      bytesDown: 0,
      nonces: [],
      maxUpdateBytes,
      stateBytes,
      refusalsByClient: new Map(),
      sampling,
      examples: 0,
      lastAcceptedAt: startedAt,
      timer: undefined,
      closed: false,
    };
    if (selected.length < this.spec.minClients) {
      // a Poisson draw can come out short; none of them was told, so the attempt just ends
      this.current = current;
      offers.clear();
      this.belowMinimum(current, `round ${round} attempt ${attempt} drew ${selected.length} of ${sampling.population} connected clients (${sampling.note}), below the minimum of ${this.spec.minClients}`);
      return;
    }
    current.collector.start(current);
    this.current = current;
    current.timer = setTimeout(() => this.onDeadline(current), Math.max(0, deadline - Date.now()));
    this.log.info({ round, attempt, phase: phase.kind, selected: selected.length, connected: this.links.size, stateBytes: stateBytes.length }, 'round offered');
    for (const [id, o] of offers) this.sendOffer(this.links.get(id)!, current, o.plan);
    this.changed();
  }

  private sendOffer(link: ClientLink, a: Attempt, plan: Plan): void {
    const stateBytes = a.offers.get(link.clientId)?.flora?.stateBytes ?? a.stateBytes;
    link.emit('offer', { jobId: this.jobId, round: a.round, attempt: a.attempt, plan, deadline: a.deadline, maxUpdateBytes: a.maxUpdateBytes, state: stateBytes, ...a.collector.offerFields });
    this.deps.metrics.offerBytes.inc(stateBytes.length);
    this.deps.metrics.offers.inc();
    a.bytesDown += stateBytes.length;
  }

  // ------------------------------------------------------------------ intake

  /**
   * Validates and aggregates one update; the answer is the ack sent back. Never throws for bad
   * input: every refusal is recorded, counted, logged and answered with its code.
   */
  async receiveUpdate(link: ClientLink, update: Update): Promise<UpdateAck> {
    const a = this.current;
    const bytes = update.envelope.length;
    try {
      if (update.jobId !== this.jobId) {
        throw new FedloraError('FL_ERR_ENVELOPE_BINDING', `update names job '${update.jobId}', but this connection belongs to job '${this.jobId}'`);
      }
      if (a === null || a.closed || update.round !== a.round || update.attempt !== a.attempt) {
        const now = a === null || a.closed ? 'no round is open' : `round ${a.round} attempt ${a.attempt} is open`;
        throw new FedloraError('FL_ERR_ROUND_STATE', `update for round ${update.round} attempt ${update.attempt} arrived late or early: ${now}`);
      }
      const offered = a.offers.get(link.clientId);
      if (offered === undefined) throw new FedloraError('FL_ERR_ROUND_STATE', `client '${link.clientId}' was not selected for round ${a.round} attempt ${a.attempt}`);
      const ack = await a.collector.receiveUpdate(link, offered, update);
      // it trained on the merged rounds, so it has them: its next offer starts after them
      if (ack.ok && offered.flora !== undefined) this.floraMerged.set(offered.key, offered.flora.through);
      return ack;
    } catch (e) {
      if (e instanceof FedloraError) return this.refuse(a, link, e, { round: update.round, attempt: update.attempt }, bytes);
      this.log.error({ err: e, clientId: link.clientId }, 'unexpected error while receiving an update');
      return this.refuse(a, link, new FedloraError('FL_ERR_INTERNAL', 'unexpected error while receiving the update; see the coordinator log', {}, { cause: e }), { round: update.round, attempt: update.attempt }, bytes);
    }
  }

  /**
   * Takes one client's secure aggregation message; the answer is the ack. Never throws for bad
   * input: a refusal is counted, logged and answered with its code, and the round goes on.
   */
  receiveSecAgg(link: ClientLink, m: SecAggClientMessage): SecAggAck {
    const a = this.current;
    const bytes = wireBytes(m.message);
    try {
      if (m.jobId !== this.jobId) throw new FedloraError('FL_ERR_ENVELOPE_BINDING', `secure aggregation message names job '${m.jobId}', but this connection belongs to job '${this.jobId}'`);
      if (a === null || a.closed) throw new FedloraError('FL_ERR_ROUND_STATE', `secure aggregation message for round ${m.round} attempt ${m.attempt} arrived late or early: no round is open`);
      a.collector.receiveSecAgg(link, m, bytes);
      return { ok: true };
    } catch (e) {
      if (!(e instanceof FedloraError)) this.log.error({ err: e, clientId: link.clientId }, 'unexpected error in a secure aggregation step');
      const error = e instanceof FedloraError ? e : new FedloraError('FL_ERR_INTERNAL', 'unexpected error in a secure aggregation step; see the coordinator log', {}, { cause: e });
      return this.refuse(a, link, error, { round: m.round, attempt: m.attempt, step: m.step }, bytes);
    }
  }

  /**
   * Answers a refused update or secure aggregation message: counted, logged, and recorded with the
   * round. At most MAX_REFUSALS_RECORDED per client and attempt reach the store: a client looping
   * on bad messages is still answered and counted, but cannot grow the round's records without bound.
   */
  private refuse(a: Attempt | null, link: ClientLink, error: FedloraError, at: { round: number; attempt: number; step?: string }, bytes: number): { ok: false; error: { code: string; message: string } } {
    const message = error.reason;
    this.deps.metrics.updatesRefused.inc({ reason: error.code });
    this.deps.metrics.updateBytes.inc({ status: 'refused' }, bytes);
    this.log.warn({ clientId: link.clientId, ...at, code: error.code, reason: message }, at.step === undefined ? 'update refused' : 'secure aggregation message refused');
    const recorded = a === null ? 0 : (a.refusalsByClient.get(link.clientId) ?? 0);
    if (a !== null && !a.closed && at.round === a.round && recorded < MAX_REFUSALS_RECORDED) {
      a.refusalsByClient.set(link.clientId, recorded + 1);
      const reason = at.step === undefined ? message : `${at.step}: ${message}`;
      a.records.push({ clientId: link.clientId, attempt: a.attempt, status: 'refused', reasonCode: error.code, reasonMessage: reason.slice(0, 1000), bytes, receivedAt: Date.now() });
    }
    return { ok: false, error: { code: error.code, message } };
  }

  // ------------------------------------------------------------------ deadlines, retries, commits

  private onDeadline(a: Attempt): void {
    if (a.closed || this.current !== a) return;
    a.collector.deadlineReached();
  }

  /** An attempt that cannot commit: record it, then retry or fail the job as the spec says. */
  private belowMinimum(a: Attempt, why: string): void {
    this.closeAttempt(a, 'retry');
    if (a.phase.recordsUpdates) this.deps.store.recordUpdates(this.jobId, a.round, a.records);
    const { policy, retries } = this.spec.belowMinimum;
    if (policy === 'retry' && a.attempt < retries) {
      this.deps.metrics.rounds.inc({ outcome: 'retried' });
      this.log.warn({ round: a.round, attempt: a.attempt }, `${why}; retrying`);
      this.maybeStartRound();
    } else {
      this.deps.metrics.rounds.inc({ outcome: 'failed' });
      this.fail(`${why}${policy === 'retry' ? ` after ${a.attempt + 1} attempts` : ''} (belowMinimum.policy ${policy})`);
    }
  }

  private closeAttempt(a: Attempt, reason: 'quorum' | 'deadline' | 'retry' | 'job_ended'): void {
    a.closed = true;
    if (a.timer !== undefined) clearTimeout(a.timer);
    a.collector.stop();
    if (this.current === a) this.current = null;
    for (const [id, o] of a.offers) {
      if (o.status === 'offered') this.links.get(id)?.emit('round_closed', { jobId: this.jobId, round: a.round, attempt: a.attempt, reason });
    }
    this.memoryNonces.forgetRoundsBefore(this.jobId, a.round + 1);
    this.changed();
  }

  /** The collector has enough: close the attempt and commit what it collected, through its phase. */
  private settle(a: Attempt, reason: 'quorum' | 'deadline', collect: () => Collected): void {
    if (a.closed || this.current !== a) return;
    this.closeAttempt(a, reason);
    try {
      a.phase.commit(this, a, reason, collect());
    } catch (e) {
      this.log.error({ err: e, round: a.round, phase: a.phase.kind }, a.phase.failure);
      this.fail(`${a.phase.failure}: ${(e as Error).message}`);
    }
  }

  /** Commits a round in one transaction, tells the clients, and starts the next round (or ends the job). */
  commitRound(a: Attempt, reason: 'quorum' | 'deadline', collected: Collected): void {
    const { participants, result, metrics } = collected;
    const ledger: LedgerState | null = collected.bookPrivacy();
    if (ledger !== null) metrics.epsilon = this.privacy.epsilonSpent(ledger);
    // traffic of the committed attempt, for the dashboard's round table
    metrics.offered = a.offers.size;
    metrics.bytes_up = a.records.reduce((s, r) => s + r.bytes, 0);
    metrics.bytes_down = a.bytesDown;
    const committedAt = Date.now();
    const job = this.deps.store.commitRound({
      jobId: this.jobId,
      round: a.round,
      attempts: a.attempt + 1,
      participants: [...participants],
      metrics,
      startedAt: a.startedAt,
      committedAt,
      updates: a.records,
      state: encodeGlobalState(result.state),
      ...(ledger !== null && { ledger: serializeLedger(ledger) }),
      nonces: a.nonces,
    });
    this.state = result.state;
    this.round = job.round;
    this.deps.metrics.rounds.inc({ outcome: 'committed' });
    this.changed();
    this.deps.metrics.roundDuration.observe((committedAt - a.startedAt) / 1000);
    this.log.info({ round: a.round, attempt: a.attempt, reason, participants: participants.length, metrics }, 'round committed');
    const roundResult = { jobId: this.jobId, round: a.round, participants: participants.length, metrics, ...(metrics.epsilon !== undefined && { epsilonSpent: metrics.epsilon }) };
    for (const link of this.links.values()) link.emit('round_result', roundResult);
    if (job.status === 'completed') {
      this.ended = true;
      this.log.info({ rounds: job.round }, 'job completed');
      this.broadcastEnd();
      return;
    }
    this.maybeStartRound();
    if (this.current !== null) this.deps.metrics.roundOverhead.observe((Date.now() - a.lastAcceptedAt) / 1000);
  }

  /** Commits the init phase's state as the job's initial global state (round 0), with its ledger. */
  commitInitialState(a: Attempt, collected: Collected, ledger: LedgerState | null): void {
    this.deps.store.startJob(this.jobId, this.layout!, encodeGlobalState(collected.result.state), Date.now(), ledger === null ? undefined : serializeLedger(ledger));
    this.state = collected.result.state;
    this.log.info({ attempt: a.attempt, participants: collected.participants.length, examples: a.examples }, 'fedsb init committed: job started from the clients\' gradient');
    this.changed();
    this.maybeStartRound();
  }

  private changed(): void {
    this.deps.onChange?.(this.jobId);
  }

  // ------------------------------------------------------------------ ending

  private jobEnd() {
    const job = this.deps.store.requireJob(this.jobId);
    return { jobId: this.jobId, status: job.status === 'failed' ? ('failed' as const) : ('completed' as const), ...(job.reason !== null && { reason: job.reason }), rounds: job.round };
  }

  private broadcastEnd(): void {
    const end = this.jobEnd();
    for (const link of this.links.values()) link.emit('job_end', end);
  }

  private fail(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    if (this.current !== null) this.closeAttempt(this.current, 'job_ended');
    this.clearGrace();
    this.deps.store.setJobStatus(this.jobId, 'failed', reason);
    this.changed();
    this.log.error({ reason }, 'job failed');
    this.broadcastEnd();
  }

  /** Stops timers (coordinator shutdown); the job stays as the store has it. */
  stop(): void {
    this.clearGrace();
    const a = this.current;
    if (a !== null && a.timer !== undefined) clearTimeout(a.timer);
    if (a !== null) {
      a.closed = true;
      a.collector.stop();
    }
    this.current = null;
    this.links.clear();
  }
}

/** About the bytes a message took on the wire: its JSON text, binary attachments at their length. */
function wireBytes(v: unknown): number {
  if (v instanceof Uint8Array) return v.length;
  if (typeof v === 'string') return v.length + 2;
  if (Array.isArray(v)) return 2 + v.reduce((s: number, x) => s + wireBytes(x) + 1, 0);
  if (v !== null && typeof v === 'object') return 2 + Object.entries(v).reduce((s, [k, x]) => s + k.length + 4 + wireBytes(x), 0);
  return String(v).length;
}
