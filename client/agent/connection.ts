/**
 * The agent's socket.io connection to the coordinator, with reconnection by exponential backoff
 * and jitter. socket.io-client's Manager already implements that backoff (delay_n = min(max,
 * initial * 2^n), randomised by +-jitter), so it is configured here rather than rewritten; the
 * one case it leaves out, a disconnect the server initiated, is retried by the agent with the
 * same delays (see `backoffDelay`).
 */
import { io, type Socket } from 'socket.io-client';
import { SOCKET_NAMESPACE, SOCKET_PATH, type ClientToServerEvents, type ServerToClientEvents } from '../../shared/protocol/events.js';
import { FedloraError } from '../../shared/errors.js';

export type AgentSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export interface ReconnectOptions {
  /** First retry delay, ms. @default 500 */
  readonly initialDelayMs?: number;
  /** Longest delay, ms. @default 15000 */
  readonly maxDelayMs?: number;
  /** Random spread of each delay, as a fraction (0.5: 50% to 150%). @default 0.5 */
  readonly jitter?: number;
  /** Attempts in a row before giving up (FL_ERR_CONNECTION). @default Infinity */
  readonly maxAttempts?: number;
}

/** The origin a URL names (scheme, host, port): where the socket connects. */
export function coordinatorOrigin(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (e) {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--coordinator must be a URL such as http://127.0.0.1:8080, got '${url}'`, { option: 'coordinator' }, { cause: e });
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--coordinator must be an http:// or https:// URL, got '${url}'`, { option: 'coordinator' });
  }
  return parsed.origin;
}

/**
 * The `--coordinator` value as a list: one URL, or several nodes of one cluster separated by commas
 * (`http://a:8080,http://b:8080`), each checked, duplicates dropped, order kept (the first is the
 * cluster's name for the pinned key and the enrolment record).
 * @throws FL_ERR_INVALID_ARGUMENT naming the URL that is not an http(s) URL
 */
export function coordinatorUrls(list: string): string[] {
  const urls = list.split(',').map((u) => u.trim()).filter((u) => u !== '');
  if (urls.length === 0) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--coordinator must name at least one URL, got '${list}'`, { option: 'coordinator' });
  const origins = urls.map((u) => coordinatorOrigin(u));
  return urls.filter((_, i) => origins.indexOf(origins[i]!) === i);
}

/** The job id a coordinator URL names in its path (`/jobs/<id>` or `/api/jobs/<id>`), if any. */
export function jobIdFromUrl(url: string): string | undefined {
  try {
    return /\/jobs\/([A-Za-z0-9_-]{1,64})\/?$/.exec(new URL(url).pathname)?.[1];
  } catch {
    return undefined;
  }
}

/**
 * The delay before retry `attempt` (0-based): min(max, initial 2^attempt) times a uniform factor
 * in [1 - jitter, 1 + jitter], as socket.io-client's Backoff computes it.
 */
export function backoffDelay(attempt: number, options: ReconnectOptions = {}, random: () => number = Math.random): number {
  const initial = options.initialDelayMs ?? 500;
  const max = options.maxDelayMs ?? 15_000;
  const jitter = options.jitter ?? 0.5;
  const base = Math.min(max, initial * 2 ** Math.min(attempt, 30));
  return Math.min(max, Math.max(0, base * (1 + jitter * (2 * random() - 1))));
}

/**
 * Opens the socket (it connects at once). With `reconnect` (one coordinator URL) it reconnects by
 * itself after transport failures; without (several nodes), the agent moves to the next URL instead.
 * Websocket only: every message of a connection goes to the node that accepted it, so a cluster
 * needs no sticky sessions in front of it (docs/deployment.md).
 */
export function openSocket(url: string, options: ReconnectOptions = {}, reconnect = true): AgentSocket {
  return io(`${coordinatorOrigin(url)}${SOCKET_NAMESPACE}`, {
    path: SOCKET_PATH,
    transports: ['websocket'],
    forceNew: true,
    reconnection: reconnect,
    reconnectionAttempts: options.maxAttempts ?? Infinity,
    reconnectionDelay: options.initialDelayMs ?? 500,
    reconnectionDelayMax: options.maxDelayMs ?? 15_000,
    randomizationFactor: options.jitter ?? 0.5,
  });
}
