/**
 * The coordinator's own settings (not a job's): where it listens, its database, its admin token,
 * limits. Read from `--config FILE` (JSON), overridden by flags, validated once, frozen.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { FedloraError } from '../shared/errors.js';
import { parseOrThrow } from '../shared/protocol/validate.js';

export const CoordinatorConfigSchema = z.strictObject({
  /** SQLite file. @default './fedlora.db' */
  db: z.string().min(1).default('./fedlora.db'),
  /** Interface to listen on. @default '127.0.0.1' */
  host: z.string().min(1).default('127.0.0.1'),
  /** TCP port; 0 picks a free one. @default 8080 */
  port: z.int().min(0).max(65535).default(8080),
  /** Bearer token of the admin routes. @default undefined (from FEDLORA_ADMIN_TOKEN, else generated and printed once) */
  adminToken: z.string().min(16, 'must be at least 16 characters').max(512).optional(),
  /** The coordinator's key file (mode 0600). @default `<db>.keys.json`, next to the database */
  keyFile: z.string().min(1).optional(),
  /** pino log level. @default 'info' */
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  http: z
    .strictObject({
      /** Largest JSON request body, bytes. @default 1048576 */
      bodyLimitBytes: z.int().min(1024).default(1024 * 1024),
      /** Requests per window per address on /api. @default 600 */
      rateLimit: z.int().min(1).default(600),
      /** ms. @default 60000 */
      rateLimitWindowMs: z.int().min(1000).default(60_000),
    })
    .prefault({}),
  socket: z
    .strictObject({
      /**
       * socket.io's hard cap on one message, bytes; a bigger message closes the connection. Per-round
       * limits below it are enforced with coded refusals. @default 268435456 (256 MiB)
       */
      maxMessageBytes: z.int().min(1024).default(256 * 1024 * 1024),
      /** ms a connection has to authenticate. @default 30000 */
      authTimeoutMs: z.int().min(100).default(30_000),
    })
    .prefault({}),
  engine: z
    .strictObject({
      /**
       * ms to wait, once at least minClients are connected but fewer than the round offers
       * (ceil(clientsPerRound (1 + overSelection))), before starting a round with the clients
       * there are. @default 10000
       */
      startGraceMs: z.int().min(0).default(10_000),
      /**
       * Worker threads that open and decode updates; 0 opens them on the event loop.
       * @default max(1, min(4, CPUs - 1))
       */
      openWorkers: z.int().min(0).max(64).optional(),
      /**
       * Select each round's clients from the job seed instead of the secret CSPRNG draw, so a run
       * can be repeated. Such a draw is no secret subsample: user-level DP then books q = 1.
       * Only `fedlora sim` sets it; `fedlora coordinator start` refuses it. @default false
       */
      seededSelection: z.boolean().default(false),
    })
    .prefault({}),
});
export type CoordinatorConfig = z.output<typeof CoordinatorConfigSchema>;
export type CoordinatorConfigInput = z.input<typeof CoordinatorConfigSchema>;

/** Validates a config object and freezes it. @throws FL_ERR_INVALID_CONFIG naming the field */
export function parseCoordinatorConfig(value: unknown, what = 'coordinator config'): Readonly<CoordinatorConfig> {
  return Object.freeze(parseOrThrow(CoordinatorConfigSchema, value, what));
}

/** Reads a JSON config file. @throws FL_ERR_INVALID_CONFIG naming the file */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new FedloraError('FL_ERR_INVALID_CONFIG', `cannot read config file ${path}: ${(e as Error).message}`, { path }, { cause: e });
  }
  try {
    const value = JSON.parse(text) as unknown;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('the top level must be a JSON object');
    return value as Record<string, unknown>;
  } catch (e) {
    throw new FedloraError('FL_ERR_INVALID_CONFIG', `config file ${path} is not a JSON object: ${(e as Error).message}`, { path }, { cause: e });
  }
}
