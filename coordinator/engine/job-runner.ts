/**
 * The round engine of one job (docs/architecture.md, "One round, end to end"): it starts the job's global
 * state, selects clients (seeded, over-selecting), offers each its plan and the global state,
 * opens and validates updates as they arrive (refusing bad ones with a code while the round goes
 * on), aggregates at quorum or at the deadline with the minimum, spends privacy budget, commits
 * the round in one transaction, and starts the next; below the minimum it retries or fails the
 * job as the spec says. After a restart it continues from the store's last committed round.
 *
 * One runner per job; all of its state changes happen on the event loop between awaits, and every
 * continuation after an await re-checks that its round attempt is still the current one.
 */
import { FedloraError, isFedloraError } from '../../shared/errors.js';
import type { OfferSecureAggregation, Plan, SecAggAck, SecAggClientMessage, Update, UpdateAck } from '../../shared/protocol/events.js';
import { clientRank, jobAlpha, offeredPerRound, STRATEGY_TRAITS, type JobSpec, type ModuleShape } from '../../shared/protocol/job-spec.js';
import { peftTensorNames } from '../../shared/adapter.js';
import { numel } from '../../shared/tensor.js';
import type { ClientInfo, ClientPlan, ClientUpdate, GlobalState, RoundAggregation, RoundResult, Strategy } from '../../aggregation/strategy.js';
import { factorShape } from '../../aggregation/validate-update.js';
import { ENVELOPE_OVERHEAD, MAX_HEADER_BYTES } from '../../privacy/envelope.js';
import { MemoryNonceStore, type NonceKey, type NonceStore } from '../../privacy/nonces.js';
import type { KeyPairs } from '../../privacy/keys.js';
import { accountKey, canSpend, createLedger, gaussianReleases, openAccount, parseLedger, sampledUserRounds, serializeLedger, spend, type LedgerState, type Mechanism } from '../../privacy/ledger.js';
import { clientSampling, drawClients, drawFixedSize, type ClientSampling } from '../../privacy/client-sampling.js';
import { FedSbGradientSum, fedsbInitStep } from '../../aggregation/fedsb-init.js';
import { gradientsFromSum, summedDeltasFromTensors } from '../../aggregation/secure-sum.js';
import { effectiveNoiseMultiplier, secAggConfig, type SecAggConfig, type SecAggResult } from '../../privacy/secagg/index.js';
import { SecureRound, type SecureStep } from './secure-round.js';
import { FEDSB_GRADIENT_SUFFIX } from './update-decoder.js';
import type { Store, UpdateRecord } from '../store/store.js';
import type { CoordinatorMetrics } from '../metrics.js';
import type { Logger } from '../logger.js';
import { decodeGlobalState, encodeGlobalState, encodeOfferedAdapter } from '../state-codec.js';
import { floraOffer } from '../../aggregation/flora.js';
import { jobStrategy, rankCaps, strategySpecOf } from '../jobs.js';
import type { ClientLink } from './client-link.js';
import type { UpdateOpener } from './update-opener.js';
import { clientSeed, selectClients } from './selection.js';

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

interface Offered {
  readonly plan: Plan;
  /** The strategy's plan, kept for nothing but logs today. */
  readonly strategyPlan: ClientPlan;
  /** The client's deterministic key (clientKey), the order updates are aggregated in. */
  readonly key: string;
  /** FLoRA: this client's own offered state (only the rounds it lacks) and the rounds it then has merged. */
  readonly flora?: { readonly stateBytes: Uint8Array; readonly through: number };
  status: 'offered' | 'accepted';
}

interface Attempt {
  /** `fedsb-init`: Fed-SB's gradient init phase before round 0 (no global state yet). */
  readonly phase: 'round' | 'fedsb-init';
  readonly round: number;
  readonly attempt: number;
  readonly startedAt: number;
  readonly deadline: number;
  readonly offers: Map<string, Offered>;
  readonly aggregation: RoundAggregation;
  /**
   * Accepted updates with their clients' keys: metrics always (a few numbers each); the update
   * itself only with `deterministicAggregation`, to re-aggregate in key order (finishAggregation).
   */
  readonly accepted: Array<{ readonly key: string; readonly update?: ClientUpdate; readonly examples: number; readonly metrics: Readonly<Record<string, number>> }>;
  readonly records: UpdateRecord[];
  /** Bytes of the states offered in this attempt (the downlink), for the round record. */
  bytesDown: number;
  readonly nonces: Array<{ nonce: string; clientId: string }>;
  readonly maxUpdateBytes: number;
  /** Encoded once per attempt: every selected client gets the same global state bytes. */
  readonly stateBytes: Uint8Array;
  readonly refusalsByClient: Map<string, number>;
  /** How the offered clients were drawn, and the q user-level DP books for the round. */
  readonly sampling: ClientSampling;
  /** The secure aggregation round, when the job has it on (the offers then carry `secureOffer`). */
  secure: SecureRound | null;
  secureOffer: OfferSecureAggregation | null;
  examples: number;
  lastAcceptedAt: number;
  timer: NodeJS.Timeout | undefined;
  closed: boolean;
}

/** Refused updates of one client recorded per attempt (the rest are only counted and logged). */
export const MAX_REFUSALS_RECORDED = 32;

/** User-level DP-FedAvg's job account has no budget unless the spec sets one: track epsilon anyway. */
const UNBOUNDED_EPSILON = 1e300;

export class JobRunner {
  readonly jobId: string;
  private readonly spec: JobSpec;
  private readonly strategy: Strategy;
  private readonly deps: RunnerDeps;
  private readonly log: Logger;
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
    const accepted = a.secure === null ? a.aggregation.count : a.secure.masked.size;
    return { round: a.round, attempt: a.attempt, selected: [...a.offers.keys()], accepted, secureStep: a.secure?.step ?? null };
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
    // A selected client that reconnects mid-round gets its offer again.
    // (not in a secure round: a client that left it is out of its sum, docs/protocol.md)
    const offered = this.current?.offers.get(link.clientId);
    if (offered !== undefined && offered.status === 'offered' && this.current!.secure === null) this.sendOffer(link, this.current!, offered.plan);
    this.maybeStartRound();
  }

  clientDisconnected(link: ClientLink): void {
    if (this.links.get(link.clientId) !== link) return;
    this.links.delete(link.clientId);
    this.changed();
    const a = this.current;
    if (a !== null && !a.closed && a.secure !== null) a.secure.clientGone(link.clientId);
    else this.checkRoundCanStillFinish();
  }

  /**
   * Creates the initial global state of a pending job, from its spec's modules or else from
   * these (the first authenticated client's); nothing when it has one.
   */
  ensureStarted(modules: readonly ModuleShape[]): void {
    if (this.state !== null || this.ended) return;
    const layout = this.layout ?? [...modules];
    if (this.gradientInit) {
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

  /** Whether the ledger books user-level rounds: DP-FedAvg at the coordinator, or distributed DP under secure aggregation. */
  private get userLevelDp(): boolean {
    return this.spec.privacy.user !== undefined || (this.spec.secureAggregation.enabled && this.spec.secureAggregation.dp !== undefined);
  }

  /** Whether the job's initial state is Fed-SB's gradient init (made in an init phase before round 0). */
  private get gradientInit(): boolean {
    return STRATEGY_TRAITS[this.spec.strategy].gradientInit && this.spec.fedsb?.init === 'gradient';
  }

  /** Pending job whose initial state the init phase has still to make. */
  private get awaitingInit(): boolean {
    return this.state === null && this.layout !== null && this.gradientInit;
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

  private ledgerState(): LedgerState {
    const text = this.deps.store.ledger(this.jobId);
    return text === null ? createLedger() : parseLedger(text);
  }

  /**
   * The ledger after this round's user-level spend, or null without coordinator-side DP. q is the
   * rate of the round's actual draw (privacy/client-sampling.ts): offered / connected for the
   * secret Poisson draw, 1 when it was no subsample; any offered client can end in the aggregate.
   */
  private userDpSpend(label: string, commit: boolean, sampling: ClientSampling): LedgerState | null {
    const dp = this.spec.privacy.user;
    if (dp === undefined) return null;
    return this.dpSpend(`${label} [${sampling.note}]`, commit, sampledUserRounds({ samplingRate: sampling.q, noiseMultiplier: dp.noiseMultiplier }));
  }

  /**
   * The ledger after one user-level release `mechanism` on the job's account; with commit false,
   * only checks that it fits.
   * @throws FL_ERR_BUDGET_EXCEEDED when it does not
   */
  private dpSpend(label: string, commit: boolean, mechanism: Mechanism): LedgerState {
    const budget = this.spec.privacy.budget ?? { epsilon: UNBOUNDED_EPSILON, delta: 1e-5 };
    let ledger = openAccount(this.ledgerState(), 'job', this.jobId, budget);
    const request = [{ kind: 'job' as const, id: this.jobId, mechanism }];
    if (!commit) {
      if (!canSpend(ledger, request).allowed) {
        throw new FedloraError('FL_ERR_BUDGET_EXCEEDED', `${label} would exceed the privacy budget (epsilon ${budget.epsilon}, delta ${budget.delta})`);
      }
      return ledger;
    }
    ledger = spend(ledger, request, label);
    return ledger;
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
    if (this.ended || (this.state === null && !this.awaitingInit)) return;
    const round = this.round;
    const startedAt = Date.now();
    const init = this.state === null;
    const want = offeredPerRound(this.spec);
    // the population the draw runs over, and the rate the ledger books for it
    const sampling = clientSampling(Math.max(1, this.links.size), want, this.deps.seededSelection === true);
    try {
      if (init) this.initReleaseLedger([], false);
      else this.userDpSpend(`job ${this.jobId} round ${round}`, false, sampling);
      const secureDp = this.spec.secureAggregation.enabled ? this.spec.secureAggregation.dp : undefined;
      if (!init && secureDp !== undefined) {
        // checked at the best case (every expected client in the sum); dropouts only lower the booked multiplier
        const n = Math.min(want, this.links.size);
        const best = effectiveNoiseMultiplier(secureDp.noiseMultiplier, n, honestClients(secureDp.honestFraction, n), n);
        if (best > 0) this.dpSpend(`job ${this.jobId} round ${round}`, false, this.secureMechanism(best, sampling));
      }
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
    const drawn = sampling.kind === 'seeded' ? selectClients(keys, want, this.spec.seed, round, attempt) : this.userLevelDp ? drawClients(keys, sampling) : drawFixedSize(keys, want);
    const selected = drawn.map((key) => byKey.get(key)!);
    const infos: ClientInfo[] = selected.map((id) => {
      const link = this.links.get(id)!;
      return this.spec.ranks === undefined ? { id } : { id, rank: clientRank(this.spec, link.tokenIndex) };
    });
    const strategySpec = init ? strategySpecOf(this.spec, this.layout!) : null;
    const plans: ClientPlan[] = this.state === null
      ? infos.map((c) => ({ clientId: c.id, modules: strategySpec!.modules, variant: 'fedsb', trainable: ['R'], start: 'global', mergeFirst: null }))
      : this.strategy.plan(this.state, infos);
    // FLoRA: clients merge the sum of every earlier round into pristine base weights (docs/protocol.md).
    // (FLoRA's offers are per client, below: only the rounds each one lacks)
    const offeredAdapter = STRATEGY_TRAITS[this.spec.strategy].freshEachRound ? null : (this.state?.adapter ?? null);
    const stateBytes = encodeOfferedAdapter(offeredAdapter);
    const deadline = startedAt + this.spec.roundDeadlineSeconds * 1000;
    const offers = new Map<string, Offered>();
    let maxUpdateBytes = 0;
    for (const p of plans) {
      const key = clientKey(this.links.get(p.clientId)!.tokenIndex);
      let plan = init ? this.initPlan(this.wirePlan(p, round, key)) : this.wirePlan(p, round, key);
      if (!init && p.start === 'fresh' && this.state !== null && STRATEGY_TRAITS[this.spec.strategy].freshEachRound) {
        // FLoRA: only the rounds this client has not merged (flora.ts floraOffer)
        const f = floraOffer(this.state, this.floraMerged.get(key) ?? 0);
        plan = { ...plan, extra: { ...plan.extra, flora: { from: f.from, through: f.through, ranks: f.ranks } } };
        offers.set(p.clientId, { plan, strategyPlan: p, status: 'offered', key, flora: { stateBytes: encodeOfferedAdapter(f.adapter), through: f.through } });
        maxUpdateBytes = Math.max(maxUpdateBytes, updateSizeBound(plan));
        continue;
      }
      offers.set(p.clientId, { plan, strategyPlan: p, status: 'offered', key });
      maxUpdateBytes = Math.max(maxUpdateBytes, updateSizeBound(plan));
    }
    const current: Attempt = {
      phase: init ? 'fedsb-init' : 'round',
      round,
      attempt,
      startedAt,
      deadline,
      offers,
      // LoRA-SB: G' = -eta sign(G), eta the first step's learning rate (lr / warmupSteps under warmup)
      aggregation: this.state === null ? new FedSbGradientSum(strategySpec!, String(this.spec.seed), fedsbInitStep(this.spec.training)) : this.strategy.begin(this.state),
      accepted: [],
      records: [],
      bytesDown: 0,
      nonces: [],
      maxUpdateBytes,
      stateBytes,
      refusalsByClient: new Map(),
      sampling,
      secure: null,
      secureOffer: null,
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
    if (this.spec.secureAggregation.enabled) this.startSecureRound(current);
    this.current = current;
    current.timer = setTimeout(() => this.onDeadline(current), Math.max(0, deadline - Date.now()));
    this.log.info({ round, attempt, phase: current.phase, selected: selected.length, connected: this.links.size, stateBytes: stateBytes.length }, 'round offered');
    for (const [id, o] of offers) this.sendOffer(this.links.get(id)!, current, o.plan);
    this.changed();
  }

  /** @param key the client's deterministic key (clientKey), which its round seed derives from */
  private wirePlan(p: ClientPlan, round: number, key: string): Plan {
    const modules = p.modules.map((m) => ({ path: m.path, outFeatures: m.outFeatures, inFeatures: m.inFeatures, rank: m.rank, alpha: m.alpha }));
    const updateTensors = p.modules.flatMap((m) => p.trainable.map((f) => ({ name: peftTensorNames(m.path)[f], shape: factorShape(m, f) })));
    const rank = p.modules[0]?.rank ?? this.spec.rank;
    const dp = this.spec.privacy.client;
    return {
      strategy: this.spec.strategy,
      variant: p.variant,
      rank,
      alpha: p.modules[0]?.alpha ?? jobAlpha(this.spec, rank),
      modules,
      trainable: [...p.trainable],
      start: p.start,
      updateTensors,
      training: this.spec.training,
      ...(dp !== undefined && {
        clientDp: {
          clip: dp.clip,
          ...(dp.noiseMultiplier !== undefined && { noiseMultiplier: dp.noiseMultiplier }),
          ...(dp.targetEpsilon !== undefined && { targetEpsilon: dp.targetEpsilon }),
          delta: this.spec.privacy.budget?.delta ?? 1e-5,
          rounds: this.spec.rounds,
          ...(this.gradientInit && this.spec.fedsb?.noiseMultiplier !== undefined && { initReleaseNoiseMultiplier: this.spec.fedsb.noiseMultiplier }),
        },
      }),
      seed: clientSeed(this.spec.seed, round, key),
      extra: {},
    };
  }

  /**
   * The init phase's plan (docs/protocol.md, "Fed-SB's init phase"): send, per module, the summed
   * gradient w.r.t. W0 over `samples` local examples as `base_model.model.<path>.fedsb_G.weight`
   * [m, n]; with `dp`, clip each example's gradient to `clip` and add N(0, (noiseMultiplier clip)^2).
   */
  private initPlan(plan: Plan): Plan {
    const f = this.spec.fedsb!;
    const updateTensors = plan.modules.map((m) => ({ name: `base_model.model.${m.path}${FEDSB_GRADIENT_SUFFIX}`, shape: [m.outFeatures, m.inFeatures] }));
    const dp = f.noiseMultiplier === undefined ? undefined : { clip: f.clip, noiseMultiplier: f.noiseMultiplier };
    return { ...plan, updateTensors, extra: { phase: 'fedsb-init', samples: f.samples, ...(dp !== undefined && { dp }) } };
  }

  /**
   * The ledger with the init phase's gradient release booked on each participant's client account
   * (`client:<jobId>/<clientId>`; one Gaussian mechanism, q = 1), or null without client-side DP.
   * With commit false, only checks that one release fits the budget.
   * @throws FL_ERR_BUDGET_EXCEEDED when it does not
   */
  private initReleaseLedger(participants: readonly string[], commit: boolean): LedgerState | null {
    const sigma = this.spec.fedsb?.noiseMultiplier;
    if (this.spec.privacy.client === undefined || sigma === undefined) return null;
    const budget = this.spec.privacy.budget ?? { epsilon: UNBOUNDED_EPSILON, delta: 1e-5 };
    const mechanism = gaussianReleases({ noiseMultiplier: sigma });
    if (!commit) {
      const probe = openAccount(createLedger(), 'client', `${this.jobId}/probe`, budget);
      if (!canSpend(probe, [{ kind: 'client', id: `${this.jobId}/probe`, mechanism }]).allowed) {
        throw new FedloraError('FL_ERR_BUDGET_EXCEEDED', `the fedsb init gradient release (sigma ${sigma}) alone would exceed the privacy budget (epsilon ${budget.epsilon}, delta ${budget.delta})`);
      }
      return null;
    }
    let ledger = this.ledgerState();
    for (const id of participants) ledger = openAccount(ledger, 'client', `${this.jobId}/${id}`, budget);
    return spend(ledger, participants.map((id) => ({ kind: 'client' as const, id: `${this.jobId}/${id}`, mechanism })), `job ${this.jobId} fedsb init gradient`);
  }

  private sendOffer(link: ClientLink, a: Attempt, plan: Plan): void {
    const stateBytes = a.offers.get(link.clientId)?.flora?.stateBytes ?? a.stateBytes;
    link.emit('offer', { jobId: this.jobId, round: a.round, attempt: a.attempt, plan, deadline: a.deadline, maxUpdateBytes: a.maxUpdateBytes, state: stateBytes, ...(a.secureOffer !== null && { secureAggregation: a.secureOffer }) });
    this.deps.metrics.offerBytes.inc(stateBytes.length);
    this.deps.metrics.offers.inc();
    a.bytesDown += stateBytes.length;
  }

  // ------------------------------------------------------------------ updates

  /**
   * Validates and aggregates one update; the answer is the ack sent back. Never throws for bad
   * input: every refusal is recorded, counted, logged and answered with its code.
   */
  async receiveUpdate(link: ClientLink, update: Update): Promise<UpdateAck> {
    const a = this.current;
    const bytes = update.envelope.length;
    const refuse = (error: FedloraError): UpdateAck => this.refuse(a, link, error, { round: update.round, attempt: update.attempt }, bytes);
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
      if (a.secure !== null) throw new FedloraError('FL_ERR_ROUND_STATE', `round ${a.round} is securely aggregated: send the masked vector through the 'secagg' steps, not an update`);
      if (bytes > a.maxUpdateBytes) {
        throw new FedloraError('FL_ERR_UPDATE_TOO_LARGE', `update of ${bytes} bytes is over this round's limit of ${a.maxUpdateBytes} bytes (the plan's tensors plus overhead)`);
      }
      const decoded = await this.deps.opener.open({
        envelope: update.envelope,
        expected: { jobId: this.jobId, round: a.round, attempt: a.attempt, clientId: link.clientId },
        signPublicKey: link.signPublicKey,
        plan: offered.plan,
        source: link.clientId,
        maxBytes: a.maxUpdateBytes,
      });
      if (a.closed || this.current !== a) throw new FedloraError('FL_ERR_ROUND_STATE', `round ${a.round} attempt ${a.attempt} closed while the update was being opened`);
      // Replays are checked here, on the one thread that records nonces, after the signature held.
      if (!(await this.nonces.checkAndAdd({ jobId: this.jobId, round: a.round, clientId: link.clientId, nonce: decoded.nonce }))) {
        throw new FedloraError('FL_ERR_ENVELOPE_REPLAY', `envelope nonce ${decoded.nonce} of client '${link.clientId}' was already used in job '${this.jobId}'`);
      }
      if (offered.status === 'accepted') throw new FedloraError('FL_ERR_ROUND_STATE', `client '${link.clientId}' already has an accepted update in round ${a.round}`);
      // Quorum reached while this one was being opened: the round closes on the next tick with
      // exactly clientsPerRound updates (DP-FedAvg divides by that number).
      if (a.aggregation.count >= this.spec.clientsPerRound) throw new FedloraError('FL_ERR_ROUND_STATE', `round ${a.round} attempt ${a.attempt} already has its ${this.spec.clientsPerRound} updates (quorum reached while this one was being opened)`);
      a.aggregation.add(decoded.update);
      a.accepted.push({ key: offered.key, ...(this.spec.deterministicAggregation && { update: decoded.update }), examples: decoded.update.numExamples, metrics: decoded.metrics });
      offered.status = 'accepted';
      // it trained on the merged rounds, so it has them: its next offer starts after them
      if (offered.flora !== undefined) this.floraMerged.set(offered.key, offered.flora.through);
      const now = Date.now();
      a.lastAcceptedAt = now;
      a.examples += decoded.update.numExamples;
      a.records.push({ clientId: link.clientId, attempt: a.attempt, status: 'accepted', bytes, examples: decoded.update.numExamples, receivedAt: now });
      a.nonces.push({ nonce: decoded.nonce, clientId: link.clientId });
      this.deps.metrics.updatesAccepted.inc();
      this.changed();
      this.deps.metrics.updateBytes.inc({ status: 'accepted' }, bytes);
      this.log.debug({ clientId: link.clientId, round: a.round, examples: decoded.update.numExamples, bytes }, 'update accepted');
      if (a.aggregation.count >= this.spec.clientsPerRound) setImmediate(() => this.finish(a, 'quorum'));
      else this.checkRoundCanStillFinish();
      return { ok: true, jobId: this.jobId, round: a.round };
    } catch (e) {
      if (e instanceof FedloraError) return refuse(e);
      this.log.error({ err: e, clientId: link.clientId }, 'unexpected error while receiving an update');
      return refuse(new FedloraError('FL_ERR_INTERNAL', 'unexpected error while receiving the update; see the coordinator log', {}, { cause: e }));
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

  /** Ends the attempt early when no selected client that could still send is connected. */
  private checkRoundCanStillFinish(): void {
    const a = this.current;
    // a secure round closes its steps itself (SecureRound.clientGone)
    if (a === null || a.closed || a.secure !== null) return;
    const waiting = [...a.offers].some(([id, o]) => o.status === 'offered' && this.links.has(id));
    if (!waiting) setImmediate(() => this.onDeadline(a));
  }

  private onDeadline(a: Attempt): void {
    if (a.closed || this.current !== a) return;
    if (a.secure !== null) {
      a.secure.deadlineReached();
      return;
    }
    if (a.aggregation.count >= this.spec.minClients) {
      this.finish(a, 'deadline');
      return;
    }
    this.belowMinimum(a, `round ${a.round} attempt ${a.attempt} got ${a.aggregation.count} valid updates, below the minimum of ${this.spec.minClients}`);
  }

  /** An attempt that cannot commit: record it, then retry or fail the job as the spec says. */
  private belowMinimum(a: Attempt, why: string): void {
    this.closeAttempt(a, 'retry');
    if (a.phase === 'round') this.deps.store.recordUpdates(this.jobId, a.round, a.records);
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
    a.secure?.stop();
    if (this.current === a) this.current = null;
    for (const [id, o] of a.offers) {
      if (o.status === 'offered') this.links.get(id)?.emit('round_closed', { jobId: this.jobId, round: a.round, attempt: a.attempt, reason });
    }
    this.memoryNonces.forgetRoundsBefore(this.jobId, a.round + 1);
    this.changed();
  }

  private finish(a: Attempt, reason: 'quorum' | 'deadline'): void {
    if (a.closed || this.current !== a) return;
    this.closeAttempt(a, reason);
    const participants = a.records.filter((r) => r.status === 'accepted').map((r) => r.clientId!);
    if (a.phase === 'fedsb-init') {
      this.finishInit(a, participants, () => this.finishAggregation(a));
      return;
    }
    try {
      const result = this.finishAggregation(a);
      const metrics: Record<string, number> = { clients: participants.length, examples: a.examples };
      // Summed in key order, like the aggregate, so the means do not depend on arrival order either.
      const metricSums = new Map<string, number>();
      for (const u of inKeyOrder(a.accepted)) for (const [k, v] of Object.entries(u.metrics)) metricSums.set(k, (metricSums.get(k) ?? 0) + v * u.examples);
      for (const [k, sum] of metricSums) metrics[k] = sum / a.examples;
      if (result.report.noise !== undefined) metrics.aggregation_noise = result.report.noise.overall;
      const ledger = this.userDpSpend(`job ${this.jobId} round ${a.round}`, true, a.sampling);
      const dpReport = (result.report as { dp?: { clipNorm: number; clippedUpdates: number; noiseStdOnAverage: number } }).dp;
      if (dpReport !== undefined) {
        metrics.dp_clip_norm = dpReport.clipNorm;
        metrics.dp_clipped_updates = dpReport.clippedUpdates;
        metrics.dp_noise_std = dpReport.noiseStdOnAverage;
      }
      this.commit(a, reason, participants, result, metrics, ledger);
    } catch (e) {
      this.log.error({ err: e, round: a.round }, 'round could not be aggregated or committed');
      this.fail(`round ${a.round} could not be aggregated or committed: ${(e as Error).message}`);
    }
  }

  /** Commits a round in one transaction, tells the clients, and starts the next round (or ends the job). */
  private commit(a: Attempt, reason: string, participants: readonly string[], result: RoundResult, metrics: Record<string, number>, ledger: LedgerState | null): void {
    try {
      if (ledger !== null) metrics.epsilon = spentEpsilon(ledger, this.jobId);
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
    } catch (e) {
      this.log.error({ err: e, round: a.round }, 'round could not be aggregated or committed');
      this.fail(`round ${a.round} could not be aggregated or committed: ${(e as Error).message}`);
    }
  }

  // ------------------------------------------------------------------ secure aggregation

  /**
   * Sets up the attempt's secure round (docs/protocol.md, "Secure rounds"): every offered client
   * masks the same flat vector (the plan's update tensors in order), so the plans must agree on it.
   */
  private startSecureRound(a: Attempt): void {
    const plans = [...a.offers.values()].map((o) => o.plan);
    const tensors = plans[0]!.updateTensors;
    const layoutKey = JSON.stringify(tensors);
    if (plans.some((p) => JSON.stringify(p.updateTensors) !== layoutKey)) {
      throw new FedloraError('FL_ERR_SECAGG_CONFIG', 'secure aggregation: the offered plans ask for different update tensors; a secure sum needs one layout for every client');
    }
    const vectorLength = tensors.reduce((s, t) => s + numel(t.shape), 0);
    const clients = [...a.offers.keys()];
    const config = this.secureConfig(a, clients, vectorLength);
    const sa = this.spec.secureAggregation;
    a.secureOffer = {
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
    a.secure = new SecureRound(config, sa.stepTimeoutSeconds * 1000, this.spec.clientsPerRound, {
      send: (id, step, message) => this.links.get(id)?.emit('secagg', { jobId: this.jobId, round: a.round, attempt: a.attempt, step, message }),
      onResult: (result) => this.finishSecure(a, result),
      onFailure: (error) => {
        if (a.closed || this.current !== a) return;
        this.deps.metrics.secureRounds.inc({ outcome: 'failed' });
        this.log.warn({ round: a.round, attempt: a.attempt, code: error.code, reason: error.message }, 'secure round failed');
        this.belowMinimum(a, `round ${a.round} attempt ${a.attempt}: ${error.message}`);
      },
      onStep: (step, live) => {
        this.log.debug({ round: a.round, attempt: a.attempt, step, live }, 'secure step closed');
        this.changed();
      },
    }, new Map(clients.map((id) => [id, new Uint8Array(Buffer.from(this.deps.store.getClient(id)!.signPublicKey, 'base64'))])));
  }

  private secureConfig(a: Attempt, clients: string[], vectorLength: number): SecAggConfig {
    const sa = this.spec.secureAggregation;
    const n = clients.length;
    const phase = a.phase === 'fedsb-init' ? 'fedsb-init' : `round-${a.round}`;
    const settings = {
      context: `fedlora/${this.jobId}/${phase}/attempt-${a.attempt}`,
      clients,
      vectorLength,
      graphSeed: `${this.spec.seed}/${phase}/${a.attempt}`,
      // a spec's degree above what this round's n allows means "everyone"
      ...(sa.degree !== undefined && { degree: Math.min(sa.degree, n - 1) }),
      ...(sa.threshold !== undefined && { threshold: sa.threshold }),
      clipRange: sa.clipRange,
      quantRange: sa.quantRange,
    };
    const defaults = secAggConfig(settings);
    // never fewer than the job's own minimum in a sum
    return secAggConfig({ ...settings, minSurvivors: Math.min(n, Math.max(this.spec.minClients, sa.minSurvivors ?? defaults.minSurvivors)) });
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
      if (a === null || a.closed || a.secure === null || m.round !== a.round || m.attempt !== a.attempt) {
        const now = a === null || a.closed ? 'no round is open' : a.secure === null ? `round ${a.round} is not securely aggregated` : `round ${a.round} attempt ${a.attempt} is open`;
        throw new FedloraError('FL_ERR_ROUND_STATE', `secure aggregation message for round ${m.round} attempt ${m.attempt} arrived late or early: ${now}`);
      }
      if (!a.offers.has(link.clientId)) throw new FedloraError('FL_ERR_ROUND_STATE', `client '${link.clientId}' was not selected for round ${a.round} attempt ${a.attempt}`);
      a.secure.receive(link.clientId, m, bytes);
      this.deps.metrics.updateBytes.inc({ status: 'accepted' }, bytes);
      return { ok: true };
    } catch (e) {
      if (!(e instanceof FedloraError)) this.log.error({ err: e, clientId: link.clientId }, 'unexpected error in a secure aggregation step');
      const error = e instanceof FedloraError ? e : new FedloraError('FL_ERR_INTERNAL', 'unexpected error in a secure aggregation step; see the coordinator log', {}, { cause: e });
      return this.refuse(a, link, error, { round: m.round, attempt: m.attempt, step: m.step }, bytes);
    }
  }

  /** The unmasked sum: aggregate it (or make Fed-SB's initial state from it), book distributed DP, commit. */
  private finishSecure(a: Attempt, result: SecAggResult): void {
    if (a.closed || this.current !== a) return;
    const survivors = result.survivors;
    const now = Date.now();
    for (const id of survivors) {
      const offered = a.offers.get(id);
      if (offered !== undefined) offered.status = 'accepted';
      a.records.push({ clientId: id, attempt: a.attempt, status: 'accepted', bytes: a.secure!.uploadBytes.get(id) ?? 0, receivedAt: now });
    }
    this.closeAttempt(a, 'quorum');
    this.deps.metrics.secureRounds.inc({ outcome: 'committed' });
    const tensors = a.offers.values().next().value!.plan.updateTensors;
    const dropped = result.dropped.advertise.length + result.dropped.shareKeys.length + result.dropped.maskedInput.length;
    try {
      if (a.phase === 'fedsb-init') {
        this.finishInit(a, survivors, () => {
          const spec = strategySpecOf(this.spec, this.layout!);
          const sum = new FedSbGradientSum(spec, String(this.spec.seed), fedsbInitStep(this.spec.training));
          // the plan's gradient tensors follow the spec's modules (initPlan), as gradientsFromSum reads them
          sum.addSum(gradientsFromSum(spec.modules, result.sum), 'the secure sum', survivors.length);
          return sum.finish();
        });
        return;
      }
      const sa = this.spec.secureAggregation;
      // distributed DP: a fixed denominator (as DP-FedAvg), never the survivors, whose number moves with one client's presence
      const divisor = sa.dp !== undefined ? this.spec.clientsPerRound : survivors.length;
      const aggregated = this.strategy.aggregateSummedDeltas(this.state!, summedDeltasFromTensors(result.sum, tensors), divisor);
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
      let ledger: LedgerState | null = null;
      if (sa.dp !== undefined) {
        const n = a.offers.size;
        const zEff = effectiveNoiseMultiplier(sa.dp.noiseMultiplier, n, honestClients(sa.dp.honestFraction, n), survivors.length);
        metrics.dp_clip_norm = sa.clipNorm!;
        metrics.secagg_noise_multiplier = zEff;
        metrics.dp_noise_std = (zEff * sa.clipNorm!) / divisor;
        ledger = this.dpSpend(`job ${this.jobId} round ${a.round} (secure, distributed DP) [${a.sampling.note}]`, true, this.secureMechanism(zEff, a.sampling));
      }
      this.log.info({ round: a.round, survivors: survivors.length, dropped, badShares: result.badShares }, 'secure sum unmasked');
      this.commit(a, 'quorum', survivors, aggregated, metrics, ledger);
    } catch (e) {
      this.log.error({ err: e, round: a.round }, 'secure round could not be aggregated or committed');
      this.fail(`round ${a.round} could not be aggregated or committed: ${(e as Error).message}`);
    }
  }

  /** Distributed DP's mechanism: q of the round's draw, sigma = the effective multiplier. */
  private secureMechanism(effectiveMultiplier: number, sampling: ClientSampling): Mechanism {
    return sampledUserRounds({ samplingRate: sampling.q, noiseMultiplier: effectiveMultiplier });
  }

  /** Commits the init phase's state as the job's initial global state (round 0), with its ledger. */
  private finishInit(a: Attempt, participants: readonly string[], aggregate: () => RoundResult): void {
    try {
      const result = aggregate();
      const ledger = this.initReleaseLedger(participants, true);
      this.deps.store.startJob(this.jobId, this.layout!, encodeGlobalState(result.state), Date.now(), ledger === null ? undefined : serializeLedger(ledger));
      this.state = result.state;
      this.log.info({ attempt: a.attempt, participants: participants.length, examples: a.examples }, 'fedsb init committed: job started from the clients\' gradient');
      this.changed();
      this.maybeStartRound();
    } catch (e) {
      this.log.error({ err: e }, 'fedsb init could not be aggregated or committed');
      this.fail(`fedsb init could not be aggregated or committed: ${(e as Error).message}`);
    }
  }

  /**
   * The attempt's aggregate, independent of the order its updates arrived in: float sums and
   * FLoRA's stacking depend on the order of addition (up to rounding), and arrival order follows
   * thread and network timing. When the updates did not arrive in key order they are added again,
   * in key order, to a fresh aggregation (the running one has already validated each of them).
   */
  private finishAggregation(a: Attempt): RoundResult {
    // Streaming by default: the running sum, in arrival order (equal to key order up to rounding).
    if (!this.spec.deterministicAggregation) return a.aggregation.finish();
    const sorted = inKeyOrder(a.accepted);
    if (sorted.every((u, i) => u === a.accepted[i])) return a.aggregation.finish();
    const fresh = a.phase === 'fedsb-init' ? new FedSbGradientSum(strategySpecOf(this.spec, this.layout!), String(this.spec.seed), fedsbInitStep(this.spec.training)) : this.strategy.begin(this.state!);
    for (const u of sorted) fresh.add(u.update!);
    return fresh.finish();
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
    if (a !== null) a.closed = true;
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

/** h, the clients assumed honest out of n offered: ceil(fraction n), at least 1. */
function honestClients(fraction: number, n: number): number {
  return Math.max(1, Math.ceil(fraction * n - 1e-9));
}

/** A client's deterministic key from its token index, zero-padded so that string order is numeric order. */
function clientKey(tokenIndex: number): string {
  return `t${String(tokenIndex).padStart(10, '0')}`;
}

/** A copy of accepted updates sorted by their clients' keys. */
function inKeyOrder<T extends { readonly key: string }>(accepted: readonly T[]): T[] {
  return [...accepted].sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
}

/** Epsilon of the job's account in a ledger. */
function spentEpsilon(ledger: LedgerState, jobId: string): number {
  const account = ledger.accounts[accountKey('job', jobId)];
  return account?.entries[account.entries.length - 1]?.epsilon ?? 0;
}

/**
 * The largest envelope a plan can produce: its F32 data, a generous safetensors header (names,
 * shapes, metadata with metrics), and the envelope's framing, header and box overhead.
 */
export function updateSizeBound(plan: Plan): number {
  let data = 0;
  let header = 256;
  for (const t of plan.updateTensors) {
    data += 4 * numel(t.shape);
    header += t.name.length + 96;
  }
  return data + header + 8192 + ENVELOPE_OVERHEAD + MAX_HEADER_BYTES + 48;
}
