/**
 * The federation job spec: what `POST /api/jobs` accepts and what the coordinator stores.
 * Validated once at the edge with zod (docs/architecture.md, "Conventions"); everything after works on the parsed,
 * frozen `JobSpec` with every default filled in. Every optional field documents its default.
 *
 * The minimal body that must work (issue 5):
 * `{"strategy": "fedsb", "rounds": 3, "clientsPerRound": 2, "minClients": 2,
 *   "model": {"sha256": "<hex>", "targetModules": ["q_proj", "v_proj"]}, "rank": 4, "seed": 1}`
 */
import { z } from 'zod';

/** The aggregation strategies of aggregation/registry.ts (docs/strategies.md). */
export const STRATEGY_NAMES = ['fedavg', 'flora', 'ffa', 'fedsb'] as const;
export const StrategyNameSchema = z.enum(STRATEGY_NAMES);
export type StrategyName = z.infer<typeof StrategyNameSchema>;

/**
 * What each strategy allows and does, for the checks made outside aggregation/ (job spec,
 * coordinator, simulations, demo): they ask a trait, never a strategy's name; dispatch to the
 * implementation stays in aggregation/registry.ts. Pinned against the implementations by
 * test/aggregation/strategy-traits.test.ts. See docs/strategies.md.
 */
export interface StrategyTraits {
  /** The adapter variant clients train (shared/adapter.ts AdapterVariant). */
  readonly variant: 'lora' | 'ffa' | 'fedsb';
  /** The factors clients train and send back. */
  readonly trainable: readonly ('A' | 'B' | 'R')[];
  /**
   * Per-client ranks (`ranks`): `none` = every client trains the job's rank; `zero-padded` = a
   * client trains at most the job's rank and its smaller factors are zero-padded into the sum
   * (HetLoRA); `stacked` = any rank, the clients' factors are stacked side by side (FLoRA).
   */
  readonly heterogeneousRanks: 'none' | 'zero-padded' | 'stacked';
  /**
   * The aggregate is a weighted sum of the updates, so the coordinator may see only the sum:
   * user-level DP (privacy.user) and secure aggregation apply, through `aggregateSummedDeltas`.
   */
  readonly aggregateIsSum: boolean;
  /**
   * Each round, clients start a fresh LoRA on base weights merged with the earlier rounds' stacks
   * (never from a global adapter), so the global adapter's rank grows round by round and an export
   * may compress it by a truncated SVD (FLoRA).
   */
  readonly freshEachRound: boolean;
  /** s B A of the aggregate equals sum_k p_k s_k B_k A_k to float32 rounding (no aggregation noise). */
  readonly exactProduct: boolean;
  /** Takes the `fedsb` job options: a gradient init phase before round 1 (Fed-SB, `fedsb.init`). */
  readonly gradientInit: boolean;
}

export const STRATEGY_TRAITS: Readonly<Record<StrategyName, StrategyTraits>> = {
  fedavg: { variant: 'lora', trainable: ['A', 'B'], heterogeneousRanks: 'zero-padded', aggregateIsSum: true, freshEachRound: false, exactProduct: false, gradientInit: false },
  flora: { variant: 'lora', trainable: ['A', 'B'], heterogeneousRanks: 'stacked', aggregateIsSum: false, freshEachRound: true, exactProduct: true, gradientInit: false },
  ffa: { variant: 'ffa', trainable: ['B'], heterogeneousRanks: 'none', aggregateIsSum: true, freshEachRound: false, exactProduct: true, gradientInit: false },
  fedsb: { variant: 'fedsb', trainable: ['R'], heterogeneousRanks: 'none', aggregateIsSum: true, freshEachRound: false, exactProduct: true, gradientInit: true },
};

const positiveInt = z.int().min(1);

/** One adapted module with the shape of its frozen weight W0 [outFeatures, inFeatures]. */
export const ModuleShapeSchema = z.strictObject({
  /** Hugging Face module path, e.g. `model.layers.0.self_attn.q_proj`. */
  path: z.string().min(1).max(512),
  /** m: rows of W0. */
  outFeatures: positiveInt,
  /** n: columns of W0. */
  inFeatures: positiveInt,
});
export type ModuleShape = z.infer<typeof ModuleShapeSchema>;

export const ModelSpecSchema = z.strictObject({
  /** SHA-256 (64 hex digits, any case; stored lower case) of the base model's weights file. */
  sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex digits (the SHA-256 of the weights file)').transform((s) => s.toLowerCase()),
  /**
   * Module names LoRA applies to, matched against the end of each module path
   * (`q_proj` matches `model.layers.3.self_attn.q_proj`).
   */
  targetModules: z.array(z.string().min(1).max(128)).min(1).max(256),
  /** PEFT's `base_model_name_or_path` in the exported adapter. @default undefined (the export writes the sha256) */
  name: z.string().min(1).max(256).optional(),
  /** The client model family. @default undefined (any family whose modules match) */
  kind: z.enum(['mlp', 'llama']).optional(),
  /**
   * The adapted modules and their shapes. When absent, the coordinator learns them from the first
   * client that authenticates (its hello lists its matching modules) and every later client must
   * report the same list. @default undefined
   */
  modules: z.array(ModuleShapeSchema).min(1).max(4096).optional(),
});
export type ModelSpec = z.infer<typeof ModelSpecSchema>;

/** What happens when a round reaches its deadline with fewer than `minClients` valid updates. */
export const BelowMinimumSchema = z.strictObject({
  /** `retry`: run the round again (new selection) up to `retries` times, then fail. `fail`: fail the job at once. @default 'retry' */
  policy: z.enum(['retry', 'fail']).default('retry'),
  /** Attempts after the first one, under `retry`. @default 3 */
  retries: z.int().min(0).max(1000).default(3),
});

/** Local training on each client, sent in every plan. */
export const TrainingSpecSchema = z.strictObject({
  /** Passes over the local data per round. Ignored when `steps` is set. @default 1 */
  epochs: z.number().positive().max(1000).default(1),
  /** Local optimiser steps per round; overrides `epochs`. @default undefined */
  steps: positiveInt.max(1_000_000).optional(),
  /** Examples per batch (the expected batch under DP-SGD's Poisson sampling). @default 16 */
  batchSize: positiveInt.max(65_536).default(16),
  /** Peak learning rate (AdamW). @default 0.001 */
  lr: z.number().positive().max(10).default(1e-3),
  /** Learning-rate schedule within a round. @default 'constant' */
  schedule: z.enum(['constant', 'linear', 'cosine']).default('constant'),
  /** Linear warm-up steps before the schedule. @default 0 */
  warmupSteps: z.int().min(0).default(0),
  /** AdamW decoupled weight decay. @default 0 */
  weightDecay: z.number().min(0).max(1).default(0),
});
export type TrainingSpec = z.infer<typeof TrainingSpecSchema>;

/**
 * Client-side sample-level DP-SGD (Abadi et al. 2016): per-example clipping to `clip`, Gaussian noise
 * of std `noiseMultiplier * clip`. Give exactly one of `noiseMultiplier` or `targetEpsilon`.
 */
export const ClientDpSchema = z
  .strictObject({
    /** sigma. @default undefined */
    noiseMultiplier: z.number().positive().max(1000).optional(),
    /** The client calibrates sigma to reach this epsilon (at `budget.delta`) over all its rounds. @default undefined */
    targetEpsilon: z.number().positive().max(1000).optional(),
    /** Per-example L2 clip norm C. @default 1 */
    clip: z.number().positive().default(1),
  })
  .refine((v) => (v.noiseMultiplier === undefined) !== (v.targetEpsilon === undefined), {
    message: 'give exactly one of noiseMultiplier or targetEpsilon',
    path: ['noiseMultiplier'],
  });
export type ClientDp = z.infer<typeof ClientDpSchema>;

/** Adaptive clipping (Andrew et al. 2021): C <- C exp(-eta_C (b - gamma)). */
export const AdaptiveClipSchema = z.strictObject({
  /** gamma, the target fraction of unclipped updates. @default 0.5 */
  targetQuantile: z.number().gt(0).lt(1).default(0.5),
  /** eta_C. @default 0.2 */
  learningRate: z.number().positive().default(0.2),
  /** Std of the noise on the unclipped count, sigma_b. @default undefined (the wrapper's default) */
  countNoise: z.number().positive().optional(),
});

/**
 * Coordinator-side user-level DP-FedAvg (McMahan et al. 2018): clip each client update to C, sum,
 * add N(0, (z C)^2), divide by the number of sampled clients. Only for sum strategies (not flora).
 */
export const UserDpSchema = z.strictObject({
  /** z. */
  noiseMultiplier: z.number().positive().max(1000),
  /** C (the initial C under adaptive clipping). @default 0.1 */
  clip: z.number().positive().default(0.1),
  /** Adaptive clipping; `true` takes every default. @default undefined (fixed clipping) */
  adaptive: z.union([z.literal(true), AdaptiveClipSchema]).optional(),
});
export type UserDp = z.infer<typeof UserDpSchema>;

/** delta of (epsilon, delta)-DP wherever none is given: a job's budget, the agent's report, the sim. */
export const DEFAULT_DELTA = 1e-5;

export const BudgetSchema = z.strictObject({
  /** Total epsilon the job may spend; a round that would exceed it is not run. */
  epsilon: z.number().positive().max(1e6),
  /** delta of (epsilon, delta)-DP. @default DEFAULT_DELTA (1e-5) */
  delta: z.number().gt(0).lt(1).default(DEFAULT_DELTA),
});

export const PrivacySpecSchema = z.strictObject({
  /** @default undefined (no client-side DP) */
  client: ClientDpSchema.optional(),
  /** @default undefined (no coordinator-side DP) */
  user: UserDpSchema.optional(),
  /** @default undefined (no budget: epsilon is still reported when DP is on) */
  budget: BudgetSchema.optional(),
});
export type PrivacySpec = z.infer<typeof PrivacySpecSchema>;

/**
 * Secure aggregation (SecAgg+, Bonawitz et al. 2017; Bell et al. 2020; docs/secure-aggregation.md):
 * the coordinator learns only the sum of a round's updates. Only for strategies whose aggregate is
 * a sum (fedavg, ffa, fedsb) with one rank for every client.
 */
export const SecureAggregationSchema = z.strictObject({
  /** @default false */
  enabled: z.boolean().default(false),
  /** k, neighbours per client in the sparse graph. @default min(n - 1, 2 ceil(1.5 log2 n)) for the n offered */
  degree: positiveInt.max(1022).optional(),
  /** t, shares that rebuild a secret, in (k/2, k]: up to k - t of a client's neighbours may drop. @default floor(k/2) + 1 */
  threshold: positiveInt.max(1022).optional(),
  /** Fewest masked inputs whose sum the coordinator may learn. @default max(2, t) */
  minSurvivors: z.int().min(2).max(100_000).optional(),
  /** c: each coordinate of a client's vector is clipped to [-c, c] before quantisation. @default 8 */
  clipRange: z.number().positive().max(1e6).default(8),
  /** T: [-c, c] maps onto the integers 0..T; n T < 2^32 for the n offered. @default 2^22 */
  quantRange: z.int().min(2).max(2 ** 31).default(2 ** 22),
  /** C: each client clips its update's delta (or init gradient) to this L2 norm first. @default undefined (no L2 clip) */
  clipNorm: z.number().positive().max(1e6).optional(),
  /** Seconds each key-exchange and unmasking step waits for the clients that are still connected. @default 30 */
  stepTimeoutSeconds: z.number().positive().max(3600).default(30),
  /**
   * Distributed DP: each client adds N(0, (z C)^2 / h) to its clipped vector, h = ceil(honestFraction n)
   * of the n offered; the sum carries N(0, (z C)^2) while h of them are honest. Needs clipNorm.
   * @default undefined (no DP noise)
   */
  dp: z
    .strictObject({
      noiseMultiplier: z.number().positive().max(1000),
      /** The fraction of each round's offered clients assumed honest. @default 1 */
      honestFraction: z.number().gt(0).max(1).default(1),
    })
    .optional(),
});
export type SecureAggregationSpec = z.infer<typeof SecureAggregationSchema>;

/**
 * Fed-SB options (docs/strategies.md, "fedsb"): how the frozen A, B and the starting R0 are made.
 * `gradient`: LoRA-SB's initialisation from the clients' summed gradient w.r.t. the base weights
 * over `samples` local examples each (an init phase before round 0, docs/protocol.md); `random`:
 * the seeded random orthonormal fallback. With DP on, the gradient release must be noised.
 */
export const FedSbSpecSchema = z.strictObject({
  /** @default 'random' */
  init: z.enum(['random', 'gradient']).default('random'),
  /** Local examples each client sums its gradient over. @default 50 */
  samples: positiveInt.max(1_000_000).default(50),
  /** Per-example L2 clip norm C of the gradient release (with noiseMultiplier). @default 1 */
  clip: z.number().positive().default(1),
  /** sigma of the Gaussian noise N(0, (sigma C)^2) on each client's clipped sum. @default undefined (exact, not private) */
  noiseMultiplier: z.number().positive().max(1000).optional(),
});
export type FedSbSpec = z.infer<typeof FedSbSpecSchema>;

export const JobSpecSchema = z
  .strictObject({
    strategy: StrategyNameSchema,
    /** Rounds to run. */
    rounds: positiveInt.max(100_000),
    /** k: valid updates a round aims for (quorum). */
    clientsPerRound: positiveInt.max(100_000),
    /** Fewest valid updates a round may commit with at its deadline. */
    minClients: positiveInt.max(100_000),
    /** Extra fraction selected beyond k, to absorb stragglers: ceil(k (1 + overSelection)) are offered. @default 0.2 */
    overSelection: z.number().min(0).max(10).default(0.2),
    /** Seconds from the offers to the deadline. @default 600 */
    roundDeadlineSeconds: z.number().positive().max(7 * 24 * 3600).default(600),
    /** Policy at a deadline with fewer than minClients updates. @default {policy: 'retry', retries: 3} */
    belowMinimum: BelowMinimumSchema.prefault({}),
    model: ModelSpecSchema,
    /** LoRA rank r (every client, and the default for `ranks`). */
    rank: positiveInt.max(4096),
    /**
     * Per-client ranks (FLoRA's heterogeneous ranks): the client holding the job's i-th enrolment token (0-based, in creation order) trains at
     * `ranks[i % ranks.length]`. @default undefined (every client at `rank`)
     */
    ranks: z.array(positiveInt.max(4096)).min(1).max(1024).optional(),
    /** LoRA alpha; the scaling is alpha / r. @default rank (s = 1; LoRA-SB's choice for fedsb) */
    alpha: z.number().positive().max(1e6).optional(),
    /** @default {epochs: 1, batchSize: 16, lr: 0.001, schedule: 'constant', warmupSteps: 0, weightDecay: 0} */
    training: TrainingSpecSchema.prefault({}),
    /** @default {} (no DP, no budget) */
    privacy: PrivacySpecSchema.prefault({}),
    /** Seeds selection and the strategy's initial state. @default 0 */
    seed: z.int().min(0).max(2 ** 32 - 1).default(0),
    /**
     * Aggregate each round's updates in the clients' enrolment order rather than arrival order, so
     * a job repeats bit for bit from its seed (simulations, experiments). Costs memory: the round's
     * accepted updates are kept until it ends, O(k adapters) instead of one running sum.
     * @default false
     */
    deterministicAggregation: z.boolean().default(false),
    /** @default {enabled: false} */
    secureAggregation: SecureAggregationSchema.prefault({}),
    /** Fed-SB only. @default undefined (init 'random') */
    fedsb: FedSbSpecSchema.optional(),
    /**
     * Strategies whose aggregate is inexact (fedavg) only: 'sketch' reports each round's aggregation
     * noise ||s B_avg A_avg - sum_k p_k s_k B_k A_k|| / ||sum_k p_k s_k B_k A_k|| as the metric
     * `aggregation_noise`, estimated by a CountSketch that costs several times the aggregation
     * itself (docs/strategies.md). @default 'off'
     */
    aggregationNoise: z.enum(['off', 'sketch']).optional(),
  })
  .superRefine((spec, ctx) => {
    if (spec.minClients > spec.clientsPerRound) {
      ctx.addIssue({ code: 'custom', path: ['minClients'], message: `must be <= clientsPerRound (${spec.clientsPerRound}), got ${spec.minClients}` });
    }
    const traits = STRATEGY_TRAITS[spec.strategy];
    if (spec.ranks !== undefined && traits.heterogeneousRanks === 'none') {
      ctx.addIssue({ code: 'custom', path: ['ranks'], message: `per-client ranks need strategy flora or fedavg (zero-padded), not ${spec.strategy}` });
    }
    if (spec.privacy.user !== undefined && !traits.aggregateIsSum) {
      ctx.addIssue({
        code: 'custom',
        path: ['privacy', 'user'],
        message: 'user-level DP needs a strategy whose aggregate is a sum; flora stacks each client apart: use privacy.client (DP-SGD) instead',
      });
    }
    if (spec.aggregationNoise === 'sketch' && traits.exactProduct) {
      ctx.addIssue({ code: 'custom', path: ['aggregationNoise'], message: `${spec.strategy} aggregates the product B A exactly: there is no aggregation noise to estimate (fedavg only)` });
    }
    if (spec.fedsb !== undefined && !traits.gradientInit) {
      ctx.addIssue({ code: 'custom', path: ['fedsb'], message: `fedsb options need strategy fedsb, not ${spec.strategy}` });
    }
    if (spec.fedsb?.init === 'gradient') {
      if (spec.privacy.user !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['fedsb', 'init'], message: "gradient init releases each client's gradient sum, which user-level DP (privacy.user) does not cover: use init 'random', or privacy.client with fedsb.noiseMultiplier" });
      }
      if (spec.privacy.client !== undefined && spec.fedsb.noiseMultiplier === undefined) {
        ctx.addIssue({ code: 'custom', path: ['fedsb', 'noiseMultiplier'], message: 'client-side DP is on (privacy.client), so the initial gradient release must be noised: set fedsb.noiseMultiplier (and fedsb.clip), or use init \'random\'' });
      }
    }
    if (spec.secureAggregation.enabled) checkSecureAggregation(spec, ctx);
  });

/** What secure aggregation needs of the rest of the spec (each refusal names the field and why). */
function checkSecureAggregation(spec: z.output<typeof JobSpecSchema>, ctx: z.RefinementCtx): void {
  const sa = spec.secureAggregation;
  const at = (field: string, message: string) => ctx.addIssue({ code: 'custom', path: ['secureAggregation', field], message });
  if (!STRATEGY_TRAITS[spec.strategy].aggregateIsSum) {
    ctx.addIssue({
      code: 'custom',
      path: ['secureAggregation', 'enabled'],
      message: "secure aggregation cannot protect 'flora': the coordinator only learns a sum, and FLoRA's aggregate is not a sum (it stacks each client's factors apart); use fedavg, ffa or fedsb, or turn secure aggregation off",
    });
  }
  if (spec.ranks !== undefined) ctx.addIssue({ code: 'custom', path: ['ranks'], message: 'secure aggregation sums equal-sized vectors: every client needs the same rank, so leave ranks unset' });
  if (spec.privacy.user !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['privacy', 'user'], message: 'under secure aggregation the coordinator never sees an update to clip or noise: use secureAggregation.dp (distributed DP) instead of privacy.user' });
  }
  if (sa.dp !== undefined && sa.clipNorm === undefined) at('clipNorm', 'distributed DP (secureAggregation.dp) needs clipNorm, the L2 sensitivity each client clips to');
  if (spec.minClients < 2) ctx.addIssue({ code: 'custom', path: ['minClients'], message: 'secure aggregation needs at least 2 clients in a sum (minClients >= 2)' });
  const offered = offeredPerRound(spec);
  if (offered * sa.quantRange >= 2 ** 32) {
    at('quantRange', `${offered} offered clients times quantRange ${sa.quantRange} must stay below 2^32 (the sum is taken mod 2^32); lower quantRange or clientsPerRound`);
  }
  if (sa.degree !== undefined && sa.degree % 2 !== 0) at('degree', `must be even (a Harary graph joins k/2 clients on either side), got ${sa.degree}; it is lowered to n - 1 when a round offers fewer clients`);
  if (sa.degree !== undefined && sa.threshold !== undefined && !(sa.threshold > sa.degree / 2 && sa.threshold <= sa.degree)) {
    at('threshold', `must be in (${sa.degree / 2}, ${sa.degree}] (more than half of the ${sa.degree} neighbours), got ${sa.threshold}`);
  }
}

/** The spec as a caller writes it (defaults optional). */
export type JobSpecInput = z.input<typeof JobSpecSchema>;
/** The spec after validation, every default filled in. */
export type JobSpec = z.output<typeof JobSpecSchema>;

/** LoRA alpha of a spec: `alpha`, or the rank when absent (s = 1). */
export function jobAlpha(spec: JobSpec, rank: number): number {
  return spec.alpha ?? rank;
}

/** Rank of the client enrolled in position `enrolmentIndex` (0-based), per `ranks` or `rank`. */
export function clientRank(spec: JobSpec, enrolmentIndex: number): number {
  if (spec.ranks === undefined) return spec.rank;
  return spec.ranks[enrolmentIndex % spec.ranks.length]!;
}

/** Clients offered each round: ceil(k (1 + overSelection)). */
export function offeredPerRound(spec: JobSpec): number {
  return Math.ceil(spec.clientsPerRound * (1 + spec.overSelection) - 1e-9);
}
