/**
 * The socket.io side of the protocol (docs/protocol.md): hello -> challenge -> auth -> welcome,
 * then updates with acks. Every incoming payload is validated with its zod schema; anything wrong
 * is answered with a coded `refusal` (and, before authentication, a disconnect), never ignored.
 */
import type { Server as HttpServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { Server, type Socket } from 'socket.io';
import type { z } from 'zod';
import { FedloraError, isFedloraError } from '../../shared/errors.js';
import {
  AuthSchema,
  HelloSchema,
  SOCKET_NAMESPACE,
  SOCKET_PATH,
  SecAggClientMessageSchema,
  UpdateSchema,
  type ClientToServerEvents,
  type SecAggAck,
  type Hello,
  type JobInfo,
  type OfferInput,
  type ServerToClientEvents,
  type UpdateAck,
} from '../../shared/protocol/events.js';
import { authMessage } from '../../shared/protocol/auth.js';
import { fromBase64 } from '../../shared/protocol/encoding.js';
import { clientRank, STRATEGY_TRAITS, type ModuleShape } from '../../shared/protocol/job-spec.js';
import { offerStateSha256, signOffer } from '../../privacy/envelope.js';
import { describeIssues, fieldPath } from '../../shared/protocol/validate.js';
import { verifyEd25519 } from '../../privacy/ed25519.js';
import { publicKeyMessage, type KeyPairs } from '../../privacy/keys.js';
import type { Store } from '../store/store.js';
import type { CoordinatorMetrics } from '../metrics.js';
import type { Logger } from '../logger.js';
import type { Engine } from '../engine/engine.js';
import type { ClientLink } from '../engine/client-link.js';
import type { JobRunner } from '../engine/job-runner.js';

/** The ack of a round message: ok, or the refusal with its code. */
type Ack = UpdateAck | SecAggAck;

export interface SocketOptions {
  /** socket.io's hard cap on one message, bytes. */
  readonly maxMessageBytes: number;
  /** ms a connection has to authenticate. */
  readonly authTimeoutMs: number;
}

export interface SocketDeps {
  readonly store: Store;
  readonly engine: Engine;
  readonly keys: KeyPairs;
  readonly metrics: CoordinatorMetrics;
  readonly logger: Logger;
}

type FlSocket = Socket<ClientToServerEvents, ServerToClientEvents>;
export type FlServer = Server<ClientToServerEvents, ServerToClientEvents>;

/**
 * The client's modules the job's targetModules name (PEFT matching: the path, or its end after a
 * dot).
 * @throws FL_ERR_BASE_MODEL_MISMATCH when a target names none of the client's modules: the job is
 *   never narrowed to what a client happens to have
 */
export function selectTargetModules(targets: readonly string[], modules: readonly ModuleShape[]): ModuleShape[] {
  const matches = (t: string, m: ModuleShape): boolean => m.path === t || m.path.endsWith(`.${t}`);
  const missing = targets.filter((t) => !modules.some((m) => matches(t, m)));
  if (missing.length > 0) {
    const known = modules.length === 0 ? 'it lists none' : `it has ${[...new Set(modules.map((m) => m.path.split('.').at(-1)))].slice(0, 16).join(', ')}`;
    throw new FedloraError('FL_ERR_BASE_MODEL_MISMATCH', `model.modules: the job's targetModules ${missing.map((t) => `'${t}'`).join(', ')} match no module of the client's model (${known}); the job adapts ${targets.join(', ')}`, { field: 'model.modules' });
  }
  return modules.filter((m) => targets.some((t) => matches(t, m)));
}

function sameLayout(a: readonly ModuleShape[], b: readonly ModuleShape[]): string | null {
  const byPath = new Map(b.map((m) => [m.path, m]));
  if (a.length !== b.length) return `the job adapts ${a.length} modules, the client reports ${b.length}`;
  for (const m of a) {
    const o = byPath.get(m.path);
    if (o === undefined) return `the client has no module '${m.path}'`;
    if (o.outFeatures !== m.outFeatures || o.inFeatures !== m.inFeatures) return `module '${m.path}' is [${o.outFeatures}, ${o.inFeatures}] on the client, [${m.outFeatures}, ${m.inFeatures}] in the job`;
  }
  return null;
}

/** Attaches the protocol's socket.io server to an HTTP server. */
export function attachSocketServer(http: HttpServer, deps: SocketDeps, options: SocketOptions): FlServer {
  // serveClient: the dashboard page loads socket.io's browser client from this server (same origin, CSP 'self').
  const io: FlServer = new Server(http, { path: SOCKET_PATH, serveClient: true, maxHttpBufferSize: options.maxMessageBytes, pingTimeout: 30_000 });
  const coordinatorKey = publicKeyMessage(deps.keys);
  // A state is encoded once per attempt and offered to every selected client: hash it once.
  const stateHashes = new WeakMap<object, string>();
  const signedOffer = (offer: OfferInput): OfferInput => {
    const state = offer.state instanceof Uint8Array ? offer.state : new Uint8Array(offer.state as ArrayBuffer);
    let hash = stateHashes.get(offer.state as object);
    if (hash === undefined) {
      hash = offerStateSha256(state);
      stateHashes.set(offer.state as object, hash);
    }
    return { ...offer, signature: signOffer({ ...offer, state }, deps.keys.sign.secretKey, hash) };
  };
  io.of(SOCKET_NAMESPACE).on('connection', (socket: FlSocket) => handleConnection(socket, deps, options, coordinatorKey, signedOffer));
  return io;
}

function handleConnection(socket: FlSocket, deps: SocketDeps, options: SocketOptions, coordinatorKey: ReturnType<typeof publicKeyMessage>, signedOffer: (offer: OfferInput) => OfferInput): void {
  const log = deps.logger.child({ socket: socket.id });
  let phase: 'hello' | 'challenged' | 'ready' = 'hello';
  let hello: Hello | null = null;
  let nonce = '';
  let link: ClientLink | null = null;

  const refuseAndClose = (e: FedloraError): void => {
    log.warn({ code: e.code, reason: e.reason, phase }, 'connection refused');
    socket.emit('refusal', { code: e.code, message: e.reason, ...(typeof e.details.field === 'string' && { field: e.details.field }), ...(hello !== null && { jobId: hello.jobId }) });
    // Let the refusal reach the client before closing.
    setImmediate(() => socket.disconnect(true));
  };

  const authTimer = setTimeout(() => refuseAndClose(new FedloraError('FL_ERR_UNAUTHORIZED', `no successful hello and auth within ${options.authTimeoutMs} ms`)), options.authTimeoutMs);

  socket.on('hello', (raw) => {
    try {
      if (phase !== 'hello') throw new FedloraError('FL_ERR_ROUND_STATE', 'hello was already received on this connection');
      const parsed = HelloSchema.safeParse(raw);
      if (!parsed.success) {
        const first = parsed.error.issues[0];
        throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `hello: ${describeIssues(parsed.error).join('; ')}`, { field: first === undefined ? '(root)' : fieldPath(first.path) });
      }
      const h = parsed.data;
      // The job comes from the credential; the hello's jobId, when given, is only a check.
      let jobId: string;
      let tokenIndex: number;
      if (h.clientId !== undefined) {
        const client = deps.store.getClient(h.clientId);
        if (client === null || (h.jobId !== undefined && client.jobId !== h.jobId)) {
          throw new FedloraError('FL_ERR_UNAUTHORIZED', `no client '${h.clientId}'${h.jobId === undefined ? '' : ` in job '${h.jobId}'`}; enrol with a token`);
        }
        if (client.signPublicKey !== h.signPublicKey) throw new FedloraError('FL_ERR_UNAUTHORIZED', `client '${h.clientId}' enrolled with another public key`);
        jobId = client.jobId;
        tokenIndex = client.tokenIndex;
      } else {
        const owner = deps.store.enrolmentTokenJob(h.enrolmentToken!);
        if (owner === null) throw new FedloraError('FL_ERR_ENROLMENT', 'unknown enrolment token; ask the job owner for one (POST /api/jobs/:id/enrolments)', { field: 'enrolmentToken' });
        if (h.jobId !== undefined && owner.jobId !== h.jobId) throw new FedloraError('FL_ERR_ENROLMENT', `enrolment token is not one of job '${h.jobId}'`, { field: 'jobId' });
        jobId = owner.jobId;
        tokenIndex = owner.tokenIndex;
      }
      const job = deps.store.getJob(jobId);
      if (job === null) throw new FedloraError('FL_ERR_NOT_FOUND', `no job '${jobId}'`, { field: 'jobId' });
      if (job.status === 'completed' || job.status === 'failed') {
        throw new FedloraError('FL_ERR_JOB_FAILED', `job '${jobId}' has ended (${job.status}${job.reason === null ? '' : `: ${job.reason}`})`);
      }
      if (h.model.sha256 !== job.spec.model.sha256) {
        throw new FedloraError('FL_ERR_BASE_MODEL_MISMATCH', `base model SHA-256 ${h.model.sha256} differs from the job's ${job.spec.model.sha256}: load the job's base model`, { field: 'model.sha256' });
      }
      // The job spec is the truth: its targetModules pick the modules from the client's list, every
      // target must name at least one of them, and a job that learns its layout learns exactly those.
      const modules = selectTargetModules(job.spec.model.targetModules, h.model.modules);
      const layout = deps.engine.runner(jobId)?.knownLayout ?? job.layout;
      if (layout !== null) {
        const problem = sameLayout(layout, modules);
        if (problem !== null) throw new FedloraError('FL_ERR_BASE_MODEL_MISMATCH', `model.modules: ${problem}`, { field: 'model.modules' });
      }
      hello = { ...h, jobId, model: { ...h.model, modules } };
      nonce = randomBytes(32).toString('base64');
      phase = 'challenged';
      const rank = clientRank(job.spec, tokenIndex);
      const { spec } = job;
      const jobInfo: JobInfo = {
        id: jobId,
        strategy: spec.strategy,
        variant: STRATEGY_TRAITS[spec.strategy].variant,
        rank,
        rounds: spec.rounds,
        model: { sha256: spec.model.sha256, targetModules: [...spec.model.targetModules], ...(spec.model.kind !== undefined && { kind: spec.model.kind }), ...(spec.model.name !== undefined && { name: spec.model.name }) },
        modules,
      };
      socket.emit('challenge', { nonce, coordinator: coordinatorKey, job: jobInfo });
    } catch (e) {
      refuseAndClose(isFedloraError(e) ? e : new FedloraError('FL_ERR_INTERNAL', 'unexpected error in hello', {}, { cause: e }));
      if (!isFedloraError(e)) log.error({ err: e }, 'unexpected error in hello');
    }
  });

  socket.on('auth', (raw) => {
    try {
      if (phase !== 'challenged' || hello === null) throw new FedloraError('FL_ERR_ROUND_STATE', 'auth before hello, or twice');
      const parsed = AuthSchema.safeParse(raw);
      if (!parsed.success) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `auth: ${describeIssues(parsed.error).join('; ')}`, { field: 'signature' });
      const h = hello as Hello & { jobId: string };
      if (!verifyEd25519(authMessage(h.jobId, nonce, h.signPublicKey), fromBase64(parsed.data.signature), fromBase64(h.signPublicKey))) {
        throw new FedloraError('FL_ERR_UNAUTHORIZED', 'the challenge signature does not verify with the hello public key');
      }
      const backend = { ...h.backend };
      const client =
        h.enrolmentToken !== undefined
          ? deps.store.enrolClient(h.jobId, h.enrolmentToken, { signPublicKey: h.signPublicKey, ...(h.boxPublicKey !== undefined && { boxPublicKey: h.boxPublicKey }), backend, ...(h.agent !== undefined && { agent: h.agent }) })
          : deps.store.getClient(h.clientId!)!;
      if (h.enrolmentToken === undefined) deps.store.touchClient(client.id, backend, h.agent);
      const runner = deps.engine.runner(h.jobId);
      if (runner === null) throw new FedloraError('FL_ERR_NOT_FOUND', `no job '${h.jobId}'`);
      phase = 'ready';
      clearTimeout(authTimer);
      deps.metrics.connectedClients.inc();
      const signKey = fromBase64(h.signPublicKey);
      link = {
        clientId: client.id,
        jobId: h.jobId,
        enrolmentIndex: client.enrolmentIndex,
        tokenIndex: client.tokenIndex,
        signPublicKey: signKey,
        backend: `${backend.name} (${backend.device})`,
        emit: (event, ...args) => {
          // Every offer is signed with the coordinator's pinned key (the client refuses it otherwise).
          if (event === 'offer') args[0] = signedOffer(args[0] as OfferInput);
          socket.emit(event, ...args);
        },
        close: () => socket.disconnect(true),
      };
      runner.ensureStarted(h.model.modules);
      const job = deps.store.requireJob(h.jobId);
      socket.emit('welcome', { clientId: client.id, jobId: h.jobId, strategy: job.spec.strategy, rounds: job.spec.rounds, round: job.round, rank: clientRank(job.spec, client.tokenIndex), status: job.status });
      log.info({ clientId: client.id, jobId: h.jobId, backend: link.backend, enrolled: h.enrolmentToken !== undefined }, 'client authenticated');
      runner.clientConnected(link, h.model.modules);
    } catch (e) {
      refuseAndClose(isFedloraError(e) ? e : new FedloraError('FL_ERR_INTERNAL', 'unexpected error in auth', {}, { cause: e }));
      if (!isFedloraError(e)) log.error({ err: e }, 'unexpected error in auth');
    }
  });

  /**
   * A round message with an ack (`update`, `secagg`): checked for authentication, its schema and
   * its job before `handle`; every refusal is answered with its code (or a `refusal` event when
   * the client gave no ack callback), counted and logged.
   */
  function onRoundMessage<T>(event: string, schema: z.ZodType<T>, handle: (runner: JobRunner, link: ClientLink, message: T) => Promise<Ack> | Ack) {
    return (raw: unknown, ack: unknown): void => {
      const answer = (result: Ack): void => {
        if (typeof ack === 'function') (ack as (r: Ack) => void)(result);
        else if (!result.ok) socket.emit('refusal', result.error);
      };
      if (phase !== 'ready' || link === null) {
        answer({ ok: false, error: { code: 'FL_ERR_UNAUTHORIZED', message: `authenticate (hello, auth) before sending '${event}'` } });
        return;
      }
      const parsed = schema.safeParse(raw);
      if (!parsed.success) {
        const e = new FedloraError('FL_ERR_INVALID_ARGUMENT', `${event}: ${describeIssues(parsed.error).join('; ')}`);
        deps.metrics.updatesRefused.inc({ reason: e.code });
        log.warn({ clientId: link.clientId, event, reason: e.reason }, 'round message refused');
        answer({ ok: false, error: { code: e.code, message: e.reason } });
        return;
      }
      const runner = deps.engine.runner(link.jobId);
      if (runner === null) {
        answer({ ok: false, error: { code: 'FL_ERR_NOT_FOUND', message: `no job '${link.jobId}'` } });
        return;
      }
      void Promise.resolve(handle(runner, link, parsed.data)).then(answer);
    };
  }

  socket.on('update', onRoundMessage('update', UpdateSchema, (runner, current, update) => runner.receiveUpdate(current, update)));
  socket.on('secagg', onRoundMessage('secagg', SecAggClientMessageSchema, (runner, current, message) => runner.receiveSecAgg(current, message)));

  socket.on('disconnect', (reason) => {
    clearTimeout(authTimer);
    if (phase === 'ready' && link !== null) {
      log.info({ clientId: link.clientId, reason }, 'client disconnected');
      deps.metrics.connectedClients.dec();
      deps.engine.runner(link.jobId)?.clientDisconnected(link);
    }
  });
}
