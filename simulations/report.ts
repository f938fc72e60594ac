/**
 * report.json of a simulation. Scripts outside the project read it, so the keys the issue fixes
 * (`strategies.<name>.final.{accuracy|perplexity, loss}`, `rounds`, `bytesUpPerClientRound`,
 * `bytesDownPerClientRound`, `epsilon`, `wallSeconds`) keep exactly these names; everything else
 * is additional. The schema is the contract: the sim validates its own report with it before
 * writing, and the tests parse real reports with it.
 */
import { z } from 'zod';

const nullableNumber = z.number().nullable();

export const RoundReportSchema = z.object({
  /** 0-based round index. */
  round: z.int().min(0),
  /** Clients whose update the round aggregated. */
  participants: z.int().min(0),
  /** The global adapter after this round, on the held-out test split. */
  accuracy: nullableNumber,
  loss: nullableNumber,
  /** The language task: perplexity on the union of the categories' test quotes, and per category. */
  perplexity: nullableNumber.optional(),
  perplexityByCategory: z.record(z.string(), z.number()).nullable().optional(),
  /** Mean local training loss over the round's clients (example-weighted). */
  trainLoss: nullableNumber,
  /** FedAvg's aggregation noise ||(sum p B)(sum p A) - sum p B A|| / ||sum p B A|| (docs/strategies.md), when the strategy reports it. */
  aggregationNoise: nullableNumber,
  /** Epsilon spent so far (user-level: the coordinator's ledger; client-level: the most-spent client's accountant). */
  epsilon: nullableNumber,
  /** Mean envelope bytes of the accepted updates. */
  bytesUpPerClient: z.number().min(0),
  /** Bytes of the global state each offered client received this round. */
  bytesDownPerClient: z.number().min(0),
  /** Offer to commit. */
  seconds: z.number().min(0),
});
export type RoundReport = z.infer<typeof RoundReportSchema>;

export const StrategyReportSchema = z.object({
  jobId: z.string(),
  status: z.enum(['completed', 'failed']),
  reason: z.string().optional(),
  /**
   * The last evaluated round's metrics; for a failed strategy with no evaluated round, none (not the
   * base model's: `status` and `reason` say what happened).
   */
  final: z.object({ accuracy: z.number().optional(), perplexity: z.number().optional(), perplexityByCategory: z.record(z.string(), z.number()).optional(), loss: z.number().optional() }),
  rounds: z.array(RoundReportSchema),
  bytesUpPerClientRound: z.number().min(0),
  bytesDownPerClientRound: z.number().min(0),
  /** Analytic float32 payload bytes per client and round from the per-matrix costs of docs/strategies.md (no envelope or header). */
  analytic: z.object({ bytesUpPerClientRound: z.number(), bytesDownPerClientRound: z.number(), formula: z.string() }),
  /** Total epsilon at the end (null: no DP). */
  epsilon: nullableNumber,
  epsilonClient: nullableNumber,
  epsilonUser: nullableNumber,
  delta: nullableNumber,
  wallSeconds: z.number().min(0),
  /** Ranks the clients trained at (several under heterogeneous ranks). */
  ranks: z.array(z.int().min(1)),
  /** Clients the coordinator enrolled in the job (every simulated client, once connected). */
  clientsEnrolled: z.int().min(0),
  droppedClientRounds: z.int().min(0),
  refusedUpdates: z.int().min(0),
  /** What the run changed from what was asked, e.g. a module's rank capped at min(m, n). @default [] */
  notes: z.array(z.string()).default([]),
});
export type StrategyReport = z.infer<typeof StrategyReportSchema>;

const byCategory = z.record(z.string(), z.number());

export const LanguageBaselinesSchema = z.object({
  training: z.object({ rounds: z.int(), epochs: z.number(), batchSize: z.int(), lr: z.number(), rank: z.int(), alpha: z.number() }),
  local: z.array(
    z.object({
      client: z.int(),
      categories: z.array(z.string()),
      /** On the client's own category (categories) test quotes. */
      ownPerplexity: z.number(),
      /** On the union of every category's test quotes. */
      perplexity: z.number(),
      byCategory,
      steps: z.int(),
      trainLoss: z.number(),
      seconds: z.number(),
    }),
  ),
  localMeanOwnPerplexity: z.number(),
  localMeanPerplexity: z.number(),
  centralised: z.object({ perplexity: z.number(), byCategory, steps: z.int(), trainLoss: z.number(), seconds: z.number() }),
  wallSeconds: z.number(),
});

export const SimReportSchema = z.object({
  tool: z.literal('fedlora sim'),
  createdAt: z.string(),
  seed: z.int(),
  config: z.record(z.string(), z.unknown()),
  data: z.object({
    source: z.string(),
    numLabels: z.int(),
    testRows: z.int(),
    publicRows: z.int(),
    federatedRows: z.int(),
    partition: z.string(),
    /** Rows per client. */
    clientRows: z.array(z.int()),
    /** Rows per class per client. */
    classCounts: z.array(z.array(z.int())),
  }),
  /** The base model on the test split: accuracy (mlp) or perplexity (language task; pretrainSeconds 0 when it came from the cache). */
  base: z.object({ sha256: z.string(), accuracy: z.number().optional(), perplexity: z.number().optional(), perplexityByCategory: z.record(z.string(), z.number()).optional(), loss: z.number(), pretrainSeconds: z.number() }),
  strategies: z.record(z.string(), StrategyReportSchema),
  /** The language task with --baselines: local-only and centralised LoRA on the same budget. */
  baselines: LanguageBaselinesSchema.optional(),
  wallSeconds: z.number(),
  /** Largest resident set of the sim process (coordinator, driver and all worker threads), sampled every 50 ms. */
  peakRssMiB: z.number(),
});
export type SimReport = z.infer<typeof SimReportSchema>;
