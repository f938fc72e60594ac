/**
 * The `llama` model's configuration, read from a Hugging Face `config.json` (the keys of
 * transformers' `LlamaConfig`) and validated once with zod. Options the model does not implement
 * are refused with FL_ERR_MODEL_CONFIG naming the key, never silently ignored: a checkpoint that
 * loads must compute what transformers' `LlamaForCausalLM` computes.
 */
import { z } from 'zod';
import { FedloraError } from '../../shared/errors.js';

/** The validated, resolved configuration (defaults applied, derived sizes computed). */
export interface LlamaConfig {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  /** Grouped-query attention: each key/value head serves numHeads / numKvHeads query heads. */
  readonly numKvHeads: number;
  /** `head_dim` when the config gives it, else hiddenSize / numHeads. */
  readonly headDim: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  readonly maxPositionEmbeddings: number;
  /** When true, lm_head reuses `model.embed_tokens.weight` and the checkpoint has no `lm_head.weight`. */
  readonly tieWordEmbeddings: boolean;
  readonly bosTokenId?: number;
  readonly eosTokenId?: number;
  readonly padTokenId?: number;
}

const positiveInt = z.number().int().positive();
const tokenId = z.number().int().nonnegative();

/**
 * The keys we read. `looseObject` keeps unknown keys (transformers writes many harmless ones:
 * `torch_dtype`, `use_cache`, `initializer_range`, ...); the keys that change the computation and
 * that we do not implement are checked one by one in {@link refuseUnsupported}.
 */
const configSchema = z.looseObject({
  model_type: z.string().optional(),
  vocab_size: positiveInt,
  hidden_size: positiveInt,
  intermediate_size: positiveInt,
  num_hidden_layers: positiveInt,
  num_attention_heads: positiveInt,
  // transformers' default: equal to num_attention_heads (plain multi-head attention).
  num_key_value_heads: positiveInt.nullish(),
  head_dim: positiveInt.nullish(),
  // transformers' LlamaConfig defaults.
  rms_norm_eps: z.number().positive().default(1e-6),
  rope_theta: z.number().positive().default(10000),
  max_position_embeddings: positiveInt.default(2048),
  tie_word_embeddings: z.boolean().default(false),
  hidden_act: z.string().default('silu'),
  attention_bias: z.boolean().default(false),
  mlp_bias: z.boolean().default(false),
  attention_dropout: z.number().default(0),
  rope_scaling: z.unknown().optional(),
  // transformers >= 4.57 / 5 moved rope_theta and rope_scaling into `rope_parameters`.
  rope_parameters: z.unknown().optional(),
  bos_token_id: z.union([tokenId, z.null()]).optional(),
  eos_token_id: z.union([tokenId, z.array(tokenId), z.null()]).optional(),
  pad_token_id: z.union([tokenId, z.null()]).optional(),
});

type RawConfig = z.infer<typeof configSchema>;

function configError(source: string, key: string, problem: string): FedloraError {
  return new FedloraError('FL_ERR_MODEL_CONFIG', `${source}: '${key}' ${problem}`, { file: source, key });
}

/** The rope type of a `rope_scaling` / `rope_parameters` object: `rope_type`, or the older `type`. */
function ropeType(value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value !== 'object') return String(value);
  const o = value as Record<string, unknown>;
  const t = o['rope_type'] ?? o['type'];
  return typeof t === 'string' ? t : 'unknown';
}

function refuseUnsupported(raw: RawConfig, source: string): void {
  if (raw.model_type !== undefined && raw.model_type !== 'llama') {
    throw configError(source, 'model_type', `is '${raw.model_type}'; only 'llama' is supported`);
  }
  if (raw.hidden_act !== 'silu') {
    throw configError(source, 'hidden_act', `is '${raw.hidden_act}'; only 'silu' (SwiGLU) is supported`);
  }
  if (raw.attention_bias) throw configError(source, 'attention_bias', 'is true; biases on q/k/v/o_proj are not supported');
  if (raw.mlp_bias) throw configError(source, 'mlp_bias', 'is true; biases on gate/up/down_proj are not supported');
  if (raw.attention_dropout !== 0) {
    throw configError(source, 'attention_dropout', `is ${raw.attention_dropout}; only 0 is supported`);
  }
  for (const key of ['rope_scaling', 'rope_parameters'] as const) {
    const t = ropeType(raw[key]);
    if (t !== undefined && t !== 'default') {
      throw configError(source, key, `has rope type '${t}'; only plain rotary embeddings (none / 'default') are supported`);
    }
  }
}

/** rope_theta: the top-level key, or `rope_parameters.rope_theta` in newer transformers configs. */
function resolveRopeTheta(raw: RawConfig, source: string): number {
  const params = raw.rope_parameters as Record<string, unknown> | null | undefined;
  const nested = params && typeof params === 'object' ? params['rope_theta'] : undefined;
  if (nested === undefined) return raw.rope_theta;
  if (typeof nested !== 'number' || !(nested > 0)) {
    throw configError(source, 'rope_parameters.rope_theta', `must be a positive number, got ${JSON.stringify(nested)}`);
  }
  return nested;
}

/**
 * Validates a parsed `config.json` and resolves it.
 * @param json the parsed JSON object
 * @param source the file it came from, for error messages
 * @throws FedloraError FL_ERR_MODEL_CONFIG naming the key and the problem
 */
export function parseLlamaConfig(json: unknown, source = 'config.json'): LlamaConfig {
  const parsed = configSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = issue.path.join('.') || '(root)';
    throw configError(source, key, issue.message);
  }
  const raw = parsed.data;
  refuseUnsupported(raw, source);
  const numHeads = raw.num_attention_heads;
  const numKvHeads = raw.num_key_value_heads ?? numHeads;
  if (numHeads % numKvHeads !== 0) {
    throw configError(source, 'num_key_value_heads', `(${numKvHeads}) must divide num_attention_heads (${numHeads})`);
  }
  let headDim = raw.head_dim ?? undefined;
  if (headDim === undefined) {
    if (raw.hidden_size % numHeads !== 0) {
      throw configError(source, 'num_attention_heads', `(${numHeads}) must divide hidden_size (${raw.hidden_size}) when head_dim is absent`);
    }
    headDim = raw.hidden_size / numHeads;
  }
  if (headDim % 2 !== 0) throw configError(source, 'head_dim', `(${headDim}) must be even for rotary embeddings`);
  const eos = Array.isArray(raw.eos_token_id) ? raw.eos_token_id[0] : raw.eos_token_id;
  return Object.freeze({
    vocabSize: raw.vocab_size,
    hiddenSize: raw.hidden_size,
    intermediateSize: raw.intermediate_size,
    numLayers: raw.num_hidden_layers,
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: raw.rms_norm_eps,
    ropeTheta: resolveRopeTheta(raw, source),
    maxPositionEmbeddings: raw.max_position_embeddings,
    tieWordEmbeddings: raw.tie_word_embeddings,
    ...(raw.bos_token_id != null ? { bosTokenId: raw.bos_token_id } : {}),
    ...(eos != null ? { eosTokenId: eos } : {}),
    ...(raw.pad_token_id != null ? { padTokenId: raw.pad_token_id } : {}),
  });
}

/**
 * The `config.json` transformers writes for this configuration (`LlamaForCausalLM`), so a model we
 * pre-train loads with `AutoModelForCausalLM.from_pretrained(dir)`.
 */
export function llamaConfigToJson(c: LlamaConfig): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim,
    hidden_act: 'silu',
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling: null,
    max_position_embeddings: c.maxPositionEmbeddings,
    tie_word_embeddings: c.tieWordEmbeddings,
    attention_bias: false,
    attention_dropout: 0,
    mlp_bias: false,
    pretraining_tp: 1,
    initializer_range: 0.02,
    torch_dtype: 'float32',
    ...(c.bosTokenId !== undefined ? { bos_token_id: c.bosTokenId } : {}),
    ...(c.eosTokenId !== undefined ? { eos_token_id: c.eosTokenId } : {}),
    ...(c.padTokenId !== undefined ? { pad_token_id: c.padTokenId } : {}),
  };
}

/** Number of parameters of the base model (embeddings, norms, projections, untied lm_head). */
export function llamaParameterCount(c: LlamaConfig): number {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const perLayer = c.hiddenSize * (q + 2 * kv) + q * c.hiddenSize + 3 * c.hiddenSize * c.intermediateSize + 2 * c.hiddenSize;
  const head = c.tieWordEmbeddings ? 0 : c.vocabSize * c.hiddenSize;
  return c.vocabSize * c.hiddenSize + c.numLayers * perLayer + c.hiddenSize + head;
}
