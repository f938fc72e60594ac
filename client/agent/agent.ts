/**
 * The client agent (issue 5, "Client agent"): joins a job, then trains every round it is
 * offered until the job ends.
 *
 * Life of a run:
 *  1. (before) the base model and the data are loaded and checked (base-model.ts, local-data.ts);
 *  2. connect; hello with the enrolment token (first run) or the stored client id; challenge:
 *     the coordinator key is checked against the pin; auth; welcome: the enrolment is recorded;
 *  3. each offer: train (round-handler.ts), seal, submit, handle the ack; `round_closed` aborts
 *     the round's training; an offer for another round or attempt supersedes the current one;
 *  4. a lost connection (coordinator restart, network) reconnects with backoff + jitter and
 *     re-authenticates with the client id; the coordinator re-offers the open round to a client
 *     whose update it has not accepted, and the agent re-sends an update it has already sealed
 *     for that very round and attempt instead of training again;
 *  5. `job_end` (or a hello refused because the job has ended) resolves `run()` with the summary.
 * A refusal during the handshake (wrong base model, key changed, token used, ...) rejects `run()`
 * with that FedloraError code: those do not heal by retrying.
 */
import { ERROR_CODES, FedloraError, isFedloraError, type ErrorCode } from '../../shared/errors.js';
import {
  ChallengeSchema,
  JobEndSchema,
  OfferSchema,
  RefusalSchema,
  RoundClosedSchema,
  RoundResultSchema,
  SecAggAckSchema,
  SecAggServerMessageSchema,
  UpdateAckSchema,
  WelcomeSchema,
  type BackendInfo,
  type Offer,
  type Refusal,
  type SecAggAck,
} from '../../shared/protocol/events.js';
import type { ZodError } from 'zod';
import { describeIssues } from '../../shared/protocol/validate.js';
import type { BaseModel } from './base-model.js';
import { clientEpsilon, clientEpsilonWithRelease, type ClientDpSettings } from './client-dp.js';
import { backoffDelay, coordinatorOrigin, openSocket, type AgentSocket, type ReconnectOptions } from './connection.js';
import { answerChallenge, buildHello, checkJobInfo, describeJob } from './handshake.js';
import { verifyOffer } from '../../privacy/envelope.js';
import type { LocalData } from './local-data.js';
import { quietProgress, type AgentProgress } from './progress.js';
import { inProcessTrainer, RoundAborted, sealRound, type RoundTrainer } from './round-handler.js';
import { AgentSecureRound, PEER_PINS_FILE } from './secure-round.js';
import { pinnedPeerTrust } from '../../privacy/secagg/peer-pins.js';
import { join } from 'node:path';
import type { StateFolder } from './state-folder.js';
import { FloraMerged } from './flora-merged.js';
import type { AgentSummary, RefusedUpdate } from './summary.js';

export interface AgentOptions {
  /** The coordinator's URL (its origin is used). */
  readonly coordinatorUrl: string;
  /**
   * Other nodes of the same cluster (docs/deployment.md): after `coordinatorUrl` cannot be reached
   * or drops the connection, the agent tries the next URL in turn (then starts over, backing off
   * once a whole round of them failed). They share `coordinatorUrl`'s key pair, so its pin, and the
   * enrolment recorded under its origin, hold for all of them. @default []
   */
  readonly fallbackUrls?: readonly string[];
  /**
   * The job to join, as a check: the coordinator knows the job from the enrolment token (or the
   * client id) and says which it is in the challenge; a different one is refused (FL_ERR_ENROLMENT).
   * @default the one the state folder recorded, else whatever job the token belongs to
   */
  readonly jobId?: string;
  /** The one-use enrolment token; needed only before the first successful join. */
  readonly token?: string;
  readonly state: StateFolder;
  readonly model: BaseModel;
  readonly data: LocalData;
  /** The training backend as the hello reports it (handshake.ts `backendForHello`). */
  readonly backend: BackendInfo;
  /** Pin this fingerprint instead of trusting on first use. @default undefined */
  readonly coordinatorFingerprint?: string;
  readonly reconnect?: ReconnectOptions;
  /**
   * ms without a connection (at the start, or after losing one) before giving up with
   * FL_ERR_CONNECTION. @default Infinity (the CLI's --connect-timeout defaults to 120 s)
   */
  readonly connectTimeoutMs?: number;
  /** ms to wait for an update's ack before treating it as lost. @default 120000 */
  readonly ackTimeoutMs?: number;
  /** @default quietProgress() */
  readonly progress?: AgentProgress;
  /**
   * Who trains the rounds. @default training on this thread (inProcessTrainer); the CLI passes a
   * WorkerTrainer (worker-trainer.ts) so the connection keeps answering heartbeats during long rounds
   */
  readonly trainer?: RoundTrainer;
}

interface RoundWork {
  readonly key: string;
  readonly offer: Offer;
  readonly abort: AbortController;
  envelope: Uint8Array | null;
  /** Submitted and answered (accepted or refused): never sent again. */
  answered: boolean;
  submitting: boolean;
  finished: Promise<void>;
  /** A securely aggregated round: the masked vector goes through these steps instead of an update. */
  secure: AgentSecureRound | null;
}

/** Training errors that would recur every round: the agent stops on them. */
const FATAL_ROUND_CODES: ReadonlySet<ErrorCode> = new Set(['FL_ERR_BASE_MODEL_MISMATCH', 'FL_ERR_ADAPTER_LAYOUT', 'FL_ERR_MODEL_CONFIG', 'FL_ERR_CHECKPOINT', 'FL_ERR_DATA', 'FL_ERR_BACKEND']);

const workKey = (o: { jobId: string; round: number; attempt: number }): string => `${o.jobId}/${o.round}/${o.attempt}`;

function asErrorCode(code: string): ErrorCode {
  return (code in ERROR_CODES ? code : 'FL_ERR_UPDATE_REFUSED') as ErrorCode;
}

export class ClientAgent {
  private readonly options: AgentOptions;
  private readonly progress: AgentProgress;
  private readonly trainer: RoundTrainer;
  /** The first URL's origin: the name of the pin and the enrolment record, whichever node answers. */
  private readonly origin: string;
  /** Origins to connect to, in turn (the first is `origin`). */
  private readonly origins: string[];
  /** Which of `origins` the socket is on. */
  private originIndex = 0;
  /** Connection attempts that failed in a row, over every origin (for the backoff). */
  private failedInRow = 0;
  /** Known once the coordinator said which job (challenge), or from the options / state folder. */
  private jobId: string | null;
  private clientId: string | null;
  private socket: AgentSocket | null = null;
  private ready = false;
  private coordinatorBoxPublicKey: Uint8Array | null = null;
  /** The pinned coordinator key every offer must be signed with. */
  private coordinatorSignPublicKey: Uint8Array | null = null;
  private connectTimer: NodeJS.Timeout | undefined;
  private work: RoundWork | null = null;
  /** FLoRA: the rounds this client has merged, in its state folder. */
  private readonly floraMerged: FloraMerged;
  private trainingChain: Promise<void> = Promise.resolve();
  private done = false;
  private connections = 0;
  private serverDisconnects = 0;
  private resolveRun!: (s: AgentSummary) => void;
  private rejectRun!: (e: Error) => void;
  private readonly started = performance.now();
  // summary counters
  private jobRounds = 0;
  private roundsTrained = 0;
  private roundsAborted = 0;
  private updatesAccepted = 0;
  private readonly refused: RefusedUpdate[] = [];
  private readonly failedRounds: RefusedUpdate[] = [];
  private lastRoundMetrics: Record<string, number> | undefined;
  private dp: ClientDpSettings | null = null;
  private dpSteps = 0;
  /** sigma of Fed-SB's init gradient release, when this client made one (composed into clientEpsilon). */
  private initReleaseSigma: number | null = null;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(options: AgentOptions) {
    this.options = options;
    this.progress = options.progress ?? quietProgress();
    this.trainer = options.trainer ?? inProcessTrainer(options.model, options.data);
    this.floraMerged = new FloraMerged(options.state.dir);
    this.origin = coordinatorOrigin(options.coordinatorUrl);
    this.origins = [...new Set([this.origin, ...(options.fallbackUrls ?? []).map((u) => coordinatorOrigin(u))])];
    const record = options.state.enrolment(this.origin, options.jobId);
    this.jobId = options.jobId ?? record?.jobId ?? null;
    this.clientId = record?.clientId ?? null;
    if (this.clientId === null && options.token === undefined) {
      const which = this.jobId === null ? '' : ` for job '${this.jobId}'`;
      throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `the state folder ${options.state.dir} holds no enrolment${which}: pass the enrolment token (--token)`, { option: 'token' });
    }
  }

  /** The client id, once enrolled. */
  get id(): string | null {
    return this.clientId;
  }

  /**
   * Connects and takes part in the job until it ends.
   * @returns the summary when the job ends
   * @throws FedloraError with the coordinator's code when the join is refused; FL_ERR_CONNECTION
   *   when reconnecting gave up
   */
  run(): Promise<AgentSummary> {
    const result = new Promise<AgentSummary>((resolve, reject) => {
      this.resolveRun = resolve;
      this.rejectRun = reject;
    });
    this.connect();
    return result;
  }

  /** Leaves now (a dropped client): aborts training and disconnects, without a summary. */
  stop(reason = 'stopped'): void {
    this.finish(() => this.rejectRun(new FedloraError('FL_ERR_CONNECTION', `the agent was stopped: ${reason}`)));
  }

  // ------------------------------------------------------------------ connection

  /** The origin the socket is on now. */
  private get current(): string {
    return this.origins[this.originIndex]!;
  }

  private connect(): void {
    // One URL: socket.io-client reconnects to it by itself. Several: this agent moves to the next (failOver).
    const single = this.origins.length === 1;
    const socket = openSocket(this.current, this.options.reconnect, single);
    this.socket = socket;
    this.armConnectTimer();
    socket.on('connect', () => this.onConnect());
    socket.on('disconnect', (reason) => this.onDisconnect(reason));
    socket.on('connect_error', (e) => {
      if (this.done) return;
      this.progress.info(`cannot reach ${this.current}: ${e.message}; ${single ? 'retrying' : 'trying the next node'}`);
      if (!single) this.failOver();
    });
    socket.io.on('reconnect_failed', () => this.fail(new FedloraError('FL_ERR_CONNECTION', `gave up reconnecting to ${this.origin} after ${this.options.reconnect?.maxAttempts ?? Infinity} attempts`)));
    socket.on('challenge', (raw) => this.guard(() => this.onChallenge(raw)));
    socket.on('welcome', (raw) => this.guard(() => this.onWelcome(raw)));
    socket.on('offer', (raw) => this.guard(() => this.onOffer(raw)));
    socket.on('round_result', (raw) => this.guard(() => this.onRoundResult(raw)));
    socket.on('round_closed', (raw) => this.guard(() => this.onRoundClosed(raw)));
    socket.on('job_end', (raw) => this.guard(() => this.onJobEnd(raw)));
    socket.on('refusal', (raw) => this.guard(() => this.onRefusal(raw)));
    socket.on('secagg', (raw) => this.guard(() => this.onSecAgg(raw)));
  }

  /** Gives up after connectTimeoutMs without a connection (a down or unreachable coordinator). */
  private armConnectTimer(): void {
    const ms = this.options.connectTimeoutMs;
    if (ms === undefined || !Number.isFinite(ms) || this.connectTimer !== undefined) return;
    this.connectTimer = setTimeout(() => {
      this.connectTimer = undefined;
      if (this.socket?.connected !== true) {
        this.fail(new FedloraError('FL_ERR_CONNECTION', `could not reach the coordinator at ${this.origins.join(', ')} for ${(ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1)} s: gave up (is it running, and is the URL right? --connect-timeout sets the wait)`));
      }
    }, ms);
  }

  /**
   * Several nodes: drops this socket and connects to the next origin, at once while some origin of
   * this pass is untried, else after the backoff delay (a whole cluster down is retried like one node).
   */
  private failOver(): void {
    const old = this.socket;
    old?.removeAllListeners();
    old?.io.removeAllListeners();
    old?.disconnect();
    this.socket = null;
    this.failedInRow++;
    const max = this.options.reconnect?.maxAttempts ?? Infinity;
    if (this.failedInRow > max) {
      this.fail(new FedloraError('FL_ERR_CONNECTION', `gave up reconnecting to ${this.origins.join(', ')} after ${max} attempts`));
      return;
    }
    this.originIndex = (this.originIndex + 1) % this.origins.length;
    const pass = Math.floor(this.failedInRow / this.origins.length);
    const delay = this.failedInRow % this.origins.length !== 0 ? 0 : backoffDelay(pass - 1, this.options.reconnect);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (!this.done) this.connect();
    }, delay);
  }

  private onConnect(): void {
    if (this.done) return;
    if (this.connectTimer !== undefined) clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    this.connections++;
    this.serverDisconnects = 0;
    this.failedInRow = 0;
    this.progress.info(`${this.connections === 1 ? 'connected to' : 'reconnected to'} ${this.current}`);
    const { model } = this.options;
    // Every adaptable module: the coordinator applies the job's targetModules (the job spec is the truth).
    const credential = this.clientId !== null ? { clientId: this.clientId } : { enrolmentToken: this.options.token! };
    this.socket!.emit('hello', buildHello({ ...(this.jobId !== null && { jobId: this.jobId }), credential, state: this.options.state, backend: this.options.backend, sha256: model.sha256, modules: model.adaptable }));
  }

  private onDisconnect(reason: string): void {
    this.ready = false;
    if (this.done) return;
    this.progress.info(`disconnected from ${this.current} (${reason})`);
    this.armConnectTimer();
    // A secure round's keys and shares live in this connection's exchange: a client that drops
    // out is out of that round's sum (the others recover it), and takes part again in the next.
    const work = this.work;
    if (work?.secure != null && !work.answered) {
      work.secure.abandon();
      work.abort.abort('disconnected during a secure round: out of its sum');
    }
    // Several nodes: the next one takes over (the job's lease moves to a live node; docs/deployment.md).
    if (this.origins.length > 1) {
      this.failOver();
      return;
    }
    // socket.io-client reconnects by itself except after a server-side disconnect; retry those
    // too (a coordinator closing every socket as it stops), with the same backoff.
    if (reason === 'io server disconnect') {
      const delay = backoffDelay(this.serverDisconnects++, this.options.reconnect);
      this.retryTimer = setTimeout(() => {
        if (!this.done) this.socket?.connect();
      }, delay);
    }
  }

  /** Runs a handler; a malformed message or an unexpected failure ends the run with its error. */
  private guard(handler: () => void): void {
    if (this.done) return;
    try {
      handler();
    } catch (e) {
      this.fail(e instanceof Error ? e : new Error(String(e)));
    }
  }

  private parse<T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: ZodError } }, raw: unknown, what: string): T {
    const r = schema.safeParse(raw);
    if (!r.success) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `the coordinator sent a malformed ${what}: ${describeIssues(r.error).join('; ')}`);
    return r.data;
  }

  // ------------------------------------------------------------------ handshake

  private onChallenge(raw: unknown): void {
    const challenge = this.parse(ChallengeSchema, raw, 'challenge');
    const { model } = this.options;
    checkJobInfo(challenge.job, { ...(this.jobId !== null && { jobId: this.jobId }), sha256: model.sha256, kind: model.kind, adaptable: model.adaptable });
    if (this.jobId === null || this.connections === 1) this.progress.info(describeJob(challenge.job));
    this.jobId = challenge.job.id;
    const answer = answerChallenge({
      challenge,
      jobId: this.jobId,
      coordinatorUrl: this.origin,
      state: this.options.state,
      ...(this.options.coordinatorFingerprint !== undefined && { configuredFingerprint: this.options.coordinatorFingerprint }),
    });
    if (answer.pin === 'first-use') this.progress.info(`pinned the coordinator key ${challenge.coordinator.fingerprint} (first contact)`);
    this.coordinatorBoxPublicKey = answer.coordinatorBoxPublicKey;
    this.coordinatorSignPublicKey = answer.coordinatorSignPublicKey;
    this.socket!.emit('auth', answer.auth);
  }

  private onWelcome(raw: unknown): void {
    const welcome = this.parse(WelcomeSchema, raw, 'welcome');
    if (welcome.jobId !== this.jobId) throw new FedloraError('FL_ERR_ROUND_STATE', `welcomed into job '${welcome.jobId}', but joined job '${this.jobId}'`);
    if (this.clientId === null) {
      this.options.state.saveEnrolment(this.origin, this.jobId, welcome.clientId);
      this.progress.info(`enrolled in job ${this.jobId} as client ${welcome.clientId} (${welcome.strategy}, rank ${welcome.rank})`);
    } else {
      this.progress.info(`authenticated as client ${welcome.clientId}; job at round ${welcome.round} of ${welcome.rounds}`);
    }
    this.clientId = welcome.clientId;
    this.jobRounds = welcome.round;
    this.ready = true;
  }

  private onRefusal(raw: unknown): void {
    const refusal: Refusal = this.parse(RefusalSchema, raw, 'refusal');
    if (this.ready) {
      // A refusal of a message after authentication (the acks carry update refusals): log it.
      this.progress.info(`coordinator refused a message: ${refusal.code}: ${refusal.message}`);
      return;
    }
    if (refusal.code === 'FL_ERR_JOB_FAILED') {
      // The job ended before this connection: nothing left to do.
      this.finish(() => this.resolveRun(this.summary('ended', refusal.message)));
      return;
    }
    this.fail(new FedloraError(asErrorCode(refusal.code), `the coordinator refused the join: ${refusal.message}`, { ...(refusal.field !== undefined && { field: refusal.field }) }));
  }

  // ------------------------------------------------------------------ rounds

  private onOffer(raw: unknown): void {
    const offer = this.parse(OfferSchema, raw, 'offer');
    if (offer.jobId !== this.jobId) return;
    // Signed with the pinned coordinator key over job, round, attempt, state, plan and settings
    // (the plan as received, before parsing added defaults): a changed offer is never trained on.
    verifyOffer({ ...offer, plan: (raw as { plan?: unknown }).plan, secureAggregation: (raw as { secureAggregation?: unknown }).secureAggregation }, offer.signature, this.coordinatorSignPublicKey!);
    const key = workKey(offer);
    const current = this.work;
    if (current !== null && current.key === key) {
      // The coordinator re-offers an open round after a reconnect: send what was sealed, if any.
      if (current.envelope !== null && !current.answered) this.submit(current);
      return;
    }
    if (current !== null) {
      current.abort.abort(`superseded by round ${offer.round} attempt ${offer.attempt}`);
      current.secure?.abandon();
    }
    const work: RoundWork = { key, offer, abort: new AbortController(), envelope: null, answered: false, submitting: false, finished: Promise.resolve(), secure: null };
    this.work = work;
    if (offer.secureAggregation !== undefined) {
      work.secure = new AgentSecureRound({ ...offer, secureAggregation: offer.secureAggregation }, this.clientId!, {
        send: (step, message) => this.sendSecAgg(offer, step, message),
        info: (line) => this.progress.info(line),
        failed: (error) => {
          this.failedRounds.push({ round: offer.round, attempt: offer.attempt, code: error.code, message: error.message });
          this.progress.info(`round ${offer.round} attempt ${offer.attempt}: secure aggregation failed for this client, it is out of the round's sum: ${error.code}: ${error.message}`);
        },
        maskedAccepted: () => {
          work.answered = true;
          this.updatesAccepted++;
          this.progress.info(`round ${offer.round}: masked update accepted`);
        },
      }, {
        identity: { signSecretKey: this.options.state.keys.sign.secretKey },
        // neighbours' enrolled signing keys, pinned on first sight per coordinator and job
        trust: pinnedPeerTrust(join(this.options.state.dir, PEER_PINS_FILE), `${this.origin} ${this.jobId}`, (peer, fingerprint) => this.progress.info(`secure aggregation: pinned peer ${peer}'s signing key ${fingerprint.slice(0, 16)}...`)),
      });
      // keys first, training meanwhile: the key exchange does not wait for the slowest trainer
      work.secure.start();
    }
    // One training at a time: the next waits for the aborted one to unwind.
    work.finished = this.trainingChain = this.trainingChain.then(() => this.train(work));
  }

  private async train(work: RoundWork): Promise<void> {
    if (this.done || work.abort.signal.aborted) return;
    const { offer } = work;
    const progress = this.progress;
    try {
      // FLoRA: the offer holds only the rounds this client lacks; train on all of them (flora-merged.ts)
      const outcome = await this.trainer.train(this.floraMerged.resolve(offer), {
        signal: work.abort.signal,
        onStart: (steps) => progress.roundStart(offer.round, offer.attempt, steps),
        onStep: (p) => progress.step(p),
      });
      progress.roundEnd();
      this.roundsTrained++;
      if (outcome.dp !== undefined) {
        this.dp = outcome.dp.settings;
        this.dpSteps += outcome.dp.steps;
      }
      if (outcome.initRelease !== undefined) this.initReleaseSigma = outcome.initRelease.noiseMultiplier;
      const shown = Object.entries(outcome.metrics).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ');
      progress.info(`round ${offer.round}: trained ${outcome.steps} steps on ${outcome.examples} examples in ${outcome.seconds.toFixed(1)} s${shown === '' ? '' : ` (${shown})`}`);
      if (work.abort.signal.aborted) return;
      if (work.secure !== null) {
        work.secure.trained(outcome.payload);
        return;
      }
      // Sealed here, on the agent's thread, with the key the current connection's challenge presented.
      work.envelope = sealRound(offer, outcome.payload, this.options.state.keys, this.clientId!, this.coordinatorBoxPublicKey!);
      this.submit(work);
    } catch (e) {
      progress.roundEnd();
      if (e instanceof RoundAborted) {
        this.roundsAborted++;
        progress.info(`round ${offer.round} attempt ${offer.attempt}: ${e.message}`);
        return;
      }
      const error = e instanceof Error ? e : new Error(String(e));
      // A plan this model or data cannot follow fails every round alike: stop with the error.
      if (isFedloraError(error) && FATAL_ROUND_CODES.has(error.code)) {
        this.fail(error);
        return;
      }
      // Anything else (a diverging loss, an unexpected failure) costs this round only: the
      // coordinator goes on without the update, and the next offer is tried afresh.
      this.failedRounds.push({ round: offer.round, attempt: offer.attempt, code: isFedloraError(error) ? error.code : error.name, message: error.message });
      progress.info(`round ${offer.round} attempt ${offer.attempt}: training failed, no update sent: ${error.stack ?? error.message}`);
    }
  }

  private submit(work: RoundWork): void {
    const socket = this.socket;
    if (socket === null || !this.ready || !socket.connected || work.submitting || work.answered || work.envelope === null) return;
    work.submitting = true;
    const { offer } = work;
    // A callback ack (not emitWithAck's promise) runs as the ack packet is read, so an ack sent
    // before job_end is counted before job_end ends the run.
    socket.timeout(this.options.ackTimeoutMs ?? 120_000).emit('update', { jobId: offer.jobId, round: offer.round, attempt: offer.attempt, envelope: work.envelope }, (err: Error | null, raw: unknown) => {
      work.submitting = false;
      // No ack (disconnected or timed out): the coordinator re-offers the round if it still wants it.
      if (err !== null) return;
      const parsed = UpdateAckSchema.safeParse(raw);
      if (!parsed.success) {
        this.fail(new FedloraError('FL_ERR_INVALID_ARGUMENT', `the coordinator sent a malformed update ack: ${describeIssues(parsed.error).join('; ')}`));
        return;
      }
      const ack = parsed.data;
      work.answered = true;
      if (ack.ok) {
        this.updatesAccepted++;
        this.progress.info(`round ${offer.round}: update accepted`);
      } else {
        this.refused.push({ round: offer.round, attempt: offer.attempt, code: ack.error.code, message: ack.error.message });
        this.progress.info(`round ${offer.round}: update refused: ${ack.error.code}: ${ack.error.message}`);
      }
    });
  }

  private onRoundClosed(raw: unknown): void {
    const closed = this.parse(RoundClosedSchema, raw, 'round_closed');
    const current = this.work;
    if (current !== null && current.key === workKey(closed) && current.envelope === null) {
      current.abort.abort(`the coordinator closed the round (${closed.reason})`);
      current.secure?.abandon();
    }
  }

  private onSecAgg(raw: unknown): void {
    const m = this.parse(SecAggServerMessageSchema, raw, 'secagg');
    const current = this.work;
    if (current === null || current.secure === null || current.key !== workKey(m)) return;
    current.secure.onServer(m);
  }

  /** Emits one secure aggregation step with an ack (a callback ack, as for updates). */
  private sendSecAgg(offer: Offer, step: 'advertise' | 'share_keys' | 'masked_input' | 'consistency' | 'unmask', message: unknown): Promise<SecAggAck> {
    const socket = this.socket;
    if (socket === null || this.done) return Promise.reject(new FedloraError('FL_ERR_CONNECTION', 'not connected'));
    return new Promise((resolve, reject) => {
      // volatile: never replayed after a reconnect (the round is left on disconnect, see onDisconnect)
      socket.volatile.timeout(this.options.ackTimeoutMs ?? 120_000).emit('secagg', { jobId: offer.jobId, round: offer.round, attempt: offer.attempt, step, message }, (err: Error | null, raw: unknown) => {
        if (err !== null) {
          reject(new FedloraError('FL_ERR_CONNECTION', `no answer to the '${step}' message: ${err.message}`, {}, { cause: err }));
          return;
        }
        const parsed = SecAggAckSchema.safeParse(raw);
        if (parsed.success) resolve(parsed.data);
        else reject(new FedloraError('FL_ERR_INVALID_ARGUMENT', `the coordinator sent a malformed secagg ack: ${describeIssues(parsed.error).join('; ')}`));
      });
    });
  }

  private onRoundResult(raw: unknown): void {
    const result = this.parse(RoundResultSchema, raw, 'round_result');
    this.jobRounds = Math.max(this.jobRounds, result.round + 1);
    this.lastRoundMetrics = result.metrics;
    this.progress.roundResult?.(result);
    this.progress.info(`round ${result.round} committed with ${result.participants} clients: ${Object.entries(result.metrics).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`).join(', ')}`);
  }

  private onJobEnd(raw: unknown): void {
    const end = this.parse(JobEndSchema, raw, 'job_end');
    this.jobRounds = end.rounds;
    this.finish(() => this.resolveRun(this.summary(end.status, end.reason)));
  }

  // ------------------------------------------------------------------ ending

  private summary(status: AgentSummary['status'], reason: string | undefined): AgentSummary {
    return {
      jobId: this.jobId ?? '',
      clientId: this.clientId ?? '',
      status,
      ...(reason !== undefined && { reason }),
      jobRounds: this.jobRounds,
      roundsTrained: this.roundsTrained,
      updatesAccepted: this.updatesAccepted,
      updatesRefused: [...this.refused],
      roundsFailed: [...this.failedRounds],
      roundsAborted: this.roundsAborted,
      reconnects: Math.max(0, this.connections - 1),
      ...(this.lastRoundMetrics !== undefined && { lastRoundMetrics: this.lastRoundMetrics }),
      ...(this.dp !== null && {
        clientEpsilon: {
          epsilon: this.initReleaseSigma === null ? clientEpsilon(this.dp, this.dpSteps) : clientEpsilonWithRelease(this.dp, this.dpSteps, this.initReleaseSigma),
          delta: this.dp.delta,
          steps: this.dpSteps,
          noiseMultiplier: this.dp.noiseMultiplier,
          samplingRate: this.dp.samplingRate,
          ...(this.initReleaseSigma !== null && { initReleaseNoiseMultiplier: this.initReleaseSigma }),
        },
      }),
      seconds: (performance.now() - this.started) / 1000,
    };
  }

  private fail(error: Error): void {
    this.finish(() => this.rejectRun(error));
  }

  /** Stops everything once; `settle` resolves or rejects run(). */
  private finish(settle: () => void): void {
    if (this.done) return;
    this.done = true;
    this.ready = false;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    if (this.connectTimer !== undefined) clearTimeout(this.connectTimer);
    this.work?.abort.abort('the agent is stopping');
    this.work?.secure?.abandon();
    this.progress.stop();
    this.socket?.disconnect();
    // Resolve once the training in flight (if any) has unwound, so the caller may free the backend.
    void this.trainingChain.then(settle, settle);
  }
}
