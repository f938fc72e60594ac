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
  type ServerToClientEvents,
  type UpdateAck,
} from '../../shared/protocol/events.js';
import { authMessage } from '../../shared/protocol/auth.js';
import { fromBase64 } from '../../shared/protocol/encoding.js';
import { clientRank, type ModuleShape } from '../../shared/protocol/job-spec.js';
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

function messageOf(e: FedloraError): string {
  return e.message.startsWith(`${e.code}: `) ? e.message.slice(e.code.length + 2) : e.message;
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
  io.of(SOCKET_NAMESPACE).on('connection', (socket: FlSocket) => handleConnection(socket, deps, options, coordinatorKey));
  return io;
}

function handleConnection(socket: FlSocket, deps: SocketDeps, options: SocketOptions, coordinatorKey: ReturnType<typeof publicKeyMessage>): void {
  const log = deps.logger.child({ socket: socket.id });
  let phase: 'hello' | 'challenged' | 'ready' = 'hello';
  let hello: Hello | null = null;
  let nonce = '';
  let link: ClientLink | null = null;

  const refuseAndClose = (e: FedloraError): void => {
    log.warn({ code: e.code, reason: messageOf(e), phase }, 'connection refused');
    socket.emit('refusal', { code: e.code, message: messageOf(e), ...(typeof e.details.field === 'string' && { field: e.details.field }), ...(hello !== null && { jobId: hello.jobId }) });
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
      hello = h;
      const job = deps.store.getJob(h.jobId);
      if (job === null) throw new FedloraError('FL_ERR_NOT_FOUND', `no job '${h.jobId}'`, { field: 'jobId' });
      if (job.status === 'completed' || job.status === 'failed') {
        throw new FedloraError('FL_ERR_JOB_FAILED', `job '${h.jobId}' has ended (${job.status}${job.reason === null ? '' : `: ${job.reason}`})`);
      }
      if (h.model.sha256 !== job.spec.model.sha256) {
        throw new FedloraError('FL_ERR_BASE_MODEL_MISMATCH', `base model SHA-256 ${h.model.sha256} differs from the job's ${job.spec.model.sha256}: load the job's base model`, { field: 'model.sha256' });
      }
      const layout = deps.engine.runner(h.jobId)?.knownLayout ?? job.layout;
      if (layout !== null) {
        const problem = sameLayout(layout, h.model.modules);
        if (problem !== null) throw new FedloraError('FL_ERR_BASE_MODEL_MISMATCH', `model.modules: ${problem}`, { field: 'model.modules' });
      } else {
        if (h.model.modules.length === 0) throw new FedloraError('FL_ERR_BASE_MODEL_MISMATCH', 'model.modules: the job learns its modules from its first client, and this hello lists none', { field: 'model.modules' });
        const targets = job.spec.model.targetModules;
        const stray = h.model.modules.find((m) => !targets.some((t) => m.path === t || m.path.endsWith(`.${t}`)));
        if (stray !== undefined) throw new FedloraError('FL_ERR_BASE_MODEL_MISMATCH', `model.modules: '${stray.path}' matches none of the job's targetModules (${targets.join(', ')})`, { field: 'model.modules' });
      }
      if (h.clientId !== undefined) {
        const client = deps.store.getClient(h.clientId);
        if (client === null || client.jobId !== h.jobId) throw new FedloraError('FL_ERR_UNAUTHORIZED', `no client '${h.clientId}' in job '${h.jobId}'; enrol with a token`);
        if (client.signPublicKey !== h.signPublicKey) throw new FedloraError('FL_ERR_UNAUTHORIZED', `client '${h.clientId}' enrolled with another public key`);
      }
      nonce = randomBytes(32).toString('base64');
      phase = 'challenged';
      socket.emit('challenge', { nonce, coordinator: coordinatorKey });
    } catch (e) {
      refuseAndClose(isFedloraError(e) ? e : new FedloraError('FL_ERR_INTERNAL', 'unexpected error in hello'));
      if (!isFedloraError(e)) log.error({ err: e }, 'unexpected error in hello');
    }
  });

  socket.on('auth', (raw) => {
    try {
      if (phase !== 'challenged' || hello === null) throw new FedloraError('FL_ERR_ROUND_STATE', 'auth before hello, or twice');
      const parsed = AuthSchema.safeParse(raw);
      if (!parsed.success) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `auth: ${describeIssues(parsed.error).join('; ')}`, { field: 'signature' });
      const h = hello;
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
        emit: (event, ...args) => socket.emit(event, ...args),
        close: () => socket.disconnect(true),
      };
      runner.ensureStarted(h.model.modules);
      const job = deps.store.requireJob(h.jobId);
      socket.emit('welcome', { clientId: client.id, jobId: h.jobId, strategy: job.spec.strategy, rounds: job.spec.rounds, round: job.round, rank: clientRank(job.spec, client.tokenIndex), status: job.status });
      log.info({ clientId: client.id, jobId: h.jobId, backend: link.backend, enrolled: h.enrolmentToken !== undefined }, 'client authenticated');
      runner.clientConnected(link, h.model.modules);
    } catch (e) {
      refuseAndClose(isFedloraError(e) ? e : new FedloraError('FL_ERR_INTERNAL', 'unexpected error in auth'));
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
        log.warn({ clientId: link.clientId, event, reason: messageOf(e) }, 'round message refused');
        answer({ ok: false, error: { code: e.code, message: messageOf(e) } });
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
