/**
 * `POST /join/job` (issue 15): the job behind an enrolment token, for the join page to show before
 * the data owner clicks Join (strategy, model, rounds, privacy target). Public, since the data owner
 * has no admin token, so it is rate-limited per address like `/api`; the token travels in the JSON
 * body (never in a URL, so it stays out of logs) and is looked up without being spent.
 */
import express, { type Router } from 'express';
import { rateLimit } from 'express-rate-limit';
import { FedloraError } from '../../shared/errors.js';
import { JoinJobRequestSchema, type JoinJob } from '../../shared/protocol/http.js';
import { parseOrThrow } from '../../shared/protocol/validate.js';
import type { Store } from '../store/store.js';
import { sendError } from './error-response.js';

export interface JoinJobOptions {
  /** Requests per window per client address. @default 600 (as `/api`) */
  rateLimit?: number;
  /** The window, ms. @default 60000 */
  rateLimitWindowMs?: number;
}

/** What the page shows of a job: no clients, no rounds' metrics, nothing but the spec's outline. */
export function joinJobOf(store: Store, token: string, now = Date.now()): JoinJob {
  const info = store.enrolmentTokenInfo(token);
  if (info === null) throw new FedloraError('FL_ERR_ENROLMENT', 'this enrolment link is not one the coordinator issued (unknown token): ask the job owner for a new link');
  const job = store.requireJob(info.jobId);
  const { spec } = job;
  const client = spec.privacy.client;
  return {
    jobId: job.id,
    status: job.status,
    strategy: spec.strategy,
    round: job.round,
    rounds: spec.rounds,
    clientsPerRound: spec.clientsPerRound,
    rank: spec.rank,
    model: { sha256: spec.model.sha256, targetModules: spec.model.targetModules, name: spec.model.name ?? null, kind: spec.model.kind ?? null },
    privacy: {
      client: client === undefined ? null : { clip: client.clip, noiseMultiplier: client.noiseMultiplier ?? null, targetEpsilon: client.targetEpsilon ?? null },
      user: spec.privacy.user === undefined ? null : { noiseMultiplier: spec.privacy.user.noiseMultiplier, clip: spec.privacy.user.clip },
      budget: spec.privacy.budget === undefined ? null : { epsilon: spec.privacy.budget.epsilon, delta: spec.privacy.budget.delta },
      secureAggregation: spec.secureAggregation.enabled,
    },
    token: { status: info.used ? 'used' : info.expiresAt <= now ? 'expired' : 'valid', expiresAt: info.expiresAt },
  };
}

/** The route, mounted at the app's root before the page's static files. */
export function joinJobRoutes(store: Store, options: JoinJobOptions = {}): Router {
  const limit = options.rateLimit ?? 600;
  const windowMs = options.rateLimitWindowMs ?? 60_000;
  const router = express.Router();
  router.post(
    '/join/job',
    rateLimit({
      windowMs,
      limit,
      standardHeaders: 'draft-8',
      legacyHeaders: false,
      handler: (_req, res) => sendError(res, new FedloraError('FL_ERR_RATE_LIMITED', `more than ${limit} requests in ${windowMs / 1000} s from this address; retry later`)),
    }),
    express.json({ limit: 4096, strict: true }),
    (req, res) => {
      const { token } = parseOrThrow(JoinJobRequestSchema, req.body ?? {}, 'join job request', 'FL_ERR_INVALID_ARGUMENT');
      res.set('cache-control', 'no-store').json(joinJobOf(store, token));
    },
  );
  return router;
}
