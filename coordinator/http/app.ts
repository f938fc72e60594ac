/**
 * The coordinator's HTTP API (express 5): jobs, enrolment tokens, the adapter download, health
 * and Prometheus metrics. Bodies are JSON, size-limited and validated with the zod schemas of
 * shared/protocol/http.ts; every error is `{"error": {"code", "message"}}` (docs/protocol.md).
 */
import express, { type Express } from 'express';
import helmet from 'helmet';
import { rateLimit } from 'express-rate-limit';
import { FedloraError } from '../../shared/errors.js';
import { AdapterQuerySchema, EnrolmentRequestSchema, type CreateJobResponse, type Health } from '../../shared/protocol/http.js';
import { parseOrThrow } from '../../shared/protocol/validate.js';
import type { Store } from '../store/store.js';
import type { Snapshot } from '../../shared/protocol/dashboard.js';
import type { CoordinatorMetrics } from '../metrics.js';
import type { Logger } from '../logger.js';
import { createEnrolment, createJob, exportAdapterTar, jobList, jobView } from '../jobs.js';
import { requireAdmin } from './admin-auth.js';
import { errorHandler, sendError } from './error-response.js';
import { DASHBOARD_HTML, DASHBOARD_JS } from '../dashboard/page.js';
import { joinRoutes } from './join.js';
import { joinJobRoutes } from './join-job.js';

export interface HttpOptions {
  /** Largest JSON body, bytes. @default 1 MiB */
  bodyLimitBytes?: number;
  /** Requests per window per client address on /api. @default 600 */
  rateLimit?: number;
  /** The rate-limit window, ms. @default 60000 */
  rateLimitWindowMs?: number;
}

export interface HttpDeps {
  readonly store: Store;
  readonly metrics: CoordinatorMetrics;
  readonly logger: Logger;
  readonly adminToken: string;
  readonly fingerprint: string;
  /** Told when a job is created, so the round engine picks it up. */
  readonly onJobCreated?: (jobId: string) => void;
  /** Whether a client of a job is connected now. */
  readonly isConnected?: (jobId: string, clientId: string) => boolean;
  /** The dashboard's snapshot (`GET /api/dashboard`), the same the live feed sends on connection. */
  readonly dashboardSnapshot?: () => Snapshot;
}

export function createHttpApp(deps: HttpDeps, options: HttpOptions = {}): Express {
  const { store, metrics, logger } = deps;
  const startedAt = Date.now();
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(helmet());

  app.get('/healthz', (_req, res) => {
    const body: Health = { status: 'ok', uptime: (Date.now() - startedAt) / 1000, fingerprint: deps.fingerprint };
    res.json(body);
  });

  app.get('/metrics', async (_req, res) => {
    res.set('content-type', metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  // The dashboard page: public HTML and script; its data comes over the token-guarded live feed.
  app.get('/dashboard', (_req, res) => {
    res.type('html').send(DASHBOARD_HTML);
  });
  app.get('/dashboard.js', (_req, res) => {
    res.type('application/javascript').send(DASHBOARD_JS);
  });
  // The data owner's page (issue 15): dist/web/, built from client/web/ (coordinator/http/join.ts).
  // The job behind an enrolment token, for the page to show before Join (public, rate-limited).
  app.use(joinJobRoutes(store, options));
  app.use(joinRoutes());

  const api = express.Router();
  api.use(
    rateLimit({
      windowMs: options.rateLimitWindowMs ?? 60_000,
      limit: options.rateLimit ?? 600,
      standardHeaders: 'draft-8',
      legacyHeaders: false,
      handler: (_req, res) => sendError(res, new FedloraError('FL_ERR_RATE_LIMITED', `more than ${options.rateLimit ?? 600} requests in ${(options.rateLimitWindowMs ?? 60_000) / 1000} s from this address; retry later`)),
    }),
  );
  api.use(requireAdmin(deps.adminToken));
  api.use(express.json({ limit: options.bodyLimitBytes ?? 1024 * 1024, strict: true }));

  api.post('/jobs', (req, res) => {
    const job = createJob(store, req.body);
    logger.info({ jobId: job.id, strategy: job.spec.strategy, rounds: job.spec.rounds }, 'job created');
    deps.onJobCreated?.(job.id);
    const body: CreateJobResponse = { id: job.id };
    res.status(201).location(`/api/jobs/${job.id}`).json(body);
  });

  api.get('/dashboard', (_req, res) => {
    res.json(deps.dashboardSnapshot?.() ?? { jobs: [] });
  });

  api.get('/jobs', (_req, res) => {
    res.json(jobList(store));
  });

  api.get('/jobs/:id', (req, res) => {
    const jobId = req.params.id;
    res.json(jobView(store, jobId, (clientId) => deps.isConnected?.(jobId, clientId) ?? false));
  });

  api.post('/jobs/:id/enrolments', (req, res) => {
    const { expiresInSeconds } = parseOrThrow(EnrolmentRequestSchema, req.body ?? {}, 'enrolment request');
    res.status(201).json(createEnrolment(store, req.params.id, expiresInSeconds));
  });

  api.get('/jobs/:id/adapter', async (req, res) => {
    const { rank } = parseOrThrow(AdapterQuerySchema, req.query, 'adapter query', 'FL_ERR_INVALID_ARGUMENT');
    const { tar, compressionError } = await exportAdapterTar(store, req.params.id, rank);
    if (compressionError !== undefined) res.set('x-fedlora-compression-error', String(compressionError));
    res
      .status(200)
      .set('content-type', 'application/x-tar')
      .set('content-disposition', `attachment; filename="${req.params.id}-adapter.tar"`)
      .send(Buffer.from(tar.buffer, tar.byteOffset, tar.byteLength));
  });

  app.use('/api', api);
  app.use((req, _res, next) => next(new FedloraError('FL_ERR_NOT_FOUND', `no route ${req.method} ${req.path}`)));
  app.use(errorHandler(logger));
  return app;
}
