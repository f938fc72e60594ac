/**
 * The `llama` model's configuration, read from a Hugging Face `config.json` and validated once
 * with zod. One decoder serves the families that share the Llama layout (RMSNorm, rotary
 * embeddings, grouped-query attention, SwiGLU), told apart by `model_type`:
 *  - `llama` (transformers' `LlamaConfig`): optional biases on q/k/v/o (`attention_bias`) and on
 *    gate/up/down (`mlp_bias`); Llama 3's `llama3` rope scaling;
 *  - `mistral` (`MistralConfig`): no biases, explicit `head_dim`, a `sliding_window` (default
 *    4096 as in transformers; `null` for none);
 *  - `qwen2` (`Qwen2Config`): biases on q/k/v (never on o), no sliding window unless
 *    `use_sliding_window` (refused).
 * Options the model does not implement are refused with FL_ERR_MODEL_CONFIG naming the key, never
 * silently ignored: a checkpoint that loads must compute what transformers' `*ForCausalLM` computes.
 */
import { z } from 'zod';
import { FedloraError } from '../../shared/errors.js';

/** The `model_type` values the decoder implements. */
export const DECODER_FAMILIES = ['llama', 'mistral', 'qwen2'] as const;
export type DecoderFamily = (typeof DECODER_FAMILIES)[number];

/**
 * Llama 3's rotary frequency rescaling (`rope_type: llama3`), as transformers'
 * `_compute_llama3_parameters`: wavelengths above original_max_position_embeddings /
 * low_freq_factor are divided by `factor`, those below original / high_freq_factor kept, and the
 * band between interpolated smoothly.
 */
export interface Llama3RopeScaling {
  readonly type: 'llama3';
  readonly factor: number;
  readonly lowFreqFactor: number;
  readonly highFreqFactor: number;
  readonly originalMaxPositionEmbeddings: number;
}

/** The validated, resolved configuration (defaults applied, derived sizes computed). */
export interface LlamaConfig {
  /** config.json's `model_type` (`llama` when absent). */
  readonly modelType: DecoderFamily;
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
  /** Frequency rescaling of the rotary embeddings; absent for plain RoPE. */
  readonly ropeScaling?: Llama3RopeScaling;
  readonly maxPositionEmbeddings: number;
  /** Bias vectors on q_proj, k_proj and v_proj (Qwen2; Llama with attention_bias). */
  readonly qkvBias: boolean;
  /** Bias vector on o_proj (Llama with attention_bias). */
  readonly oBias: boolean;
  /** Bias vectors on gate/up/down_proj (Llama with mlp_bias). */
  readonly mlpBias: boolean;
  /**
   * Mistral's sliding-window attention: token q attends to keys k with q - window < k <= q.
   * Absent: full causal attention.
   */
  readonly slidingWindow?: number;
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
  // transformers' defaults (the same in LlamaConfig, MistralConfig and Qwen2Config).
  rms_norm_eps: z.number().positive().default(1e-6),
  rope_theta: z.number().positive().default(10000),
  // The default differs per family (FAMILY_DEFAULTS).
  max_position_embeddings: positiveInt.optional(),
  tie_word_embeddings: z.boolean().default(false),
  hidden_act: z.string().default('silu'),
  attention_bias: z.boolean().optional(),
  mlp_bias: z.boolean().optional(),
  // Mistral: an int or null (default 4096); Qwen2: only read when use_sliding_window.
  sliding_window: z.union([positiveInt, z.null()]).optional(),
  use_sliding_window: z.boolean().optional(),
  // transformers 5 lists each layer's attention kind.
  layer_types: z.array(z.string()).optional(),
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
function ropeType(value: Record<string, unknown>): string {
  const t = value['rope_type'] ?? value['type'];
  return typeof t === 'string' ? t : 'default';
}

/** Per-family defaults of transformers' config classes, where they differ. */
const FAMILY_DEFAULTS: Record<DecoderFamily, { maxPositionEmbeddings: number }> = {
  llama: { maxPositionEmbeddings: 2048 },
  mistral: { maxPositionEmbeddings: 4096 * 32 },
  qwen2: { maxPositionEmbeddings: 32768 },
};

function familyOf(raw: RawConfig, source: string): DecoderFamily {
  const t = raw.model_type ?? 'llama';
  if (!(DECODER_FAMILIES as readonly string[]).includes(t)) {
    throw configError(source, 'model_type', `is '${t}'; fedlora's decoder loads ${DECODER_FAMILIES.map((f) => `'${f}'`).join(', ')}`);
  }
  return t as DecoderFamily;
}

/** Biases of the family: Llama's attention_bias / mlp_bias, Qwen2's fixed q/k/v biases, none for Mistral. */
function resolveBiases(raw: RawConfig, family: DecoderFamily, source: string): { qkvBias: boolean; oBias: boolean; mlpBias: boolean } {
  switch (family) {
    case 'llama': {
      const attention = raw.attention_bias ?? false;
      return { qkvBias: attention, oBias: attention, mlpBias: raw.mlp_bias ?? false };
    }
    case 'mistral':
    case 'qwen2': {
      // Neither MistralAttention nor Qwen2Attention reads these keys: a config that sets them
      // describes weights transformers would not use.
      for (const key of ['attention_bias', 'mlp_bias'] as const) {
        if (raw[key] === true) {
          throw configError(source, key, `is true; transformers' ${family} has ${family === 'qwen2' ? 'fixed biases on q/k/v_proj only' : 'no biases'} and ignores it`);
        }
      }
      return family === 'qwen2' ? { qkvBias: true, oBias: false, mlpBias: false } : { qkvBias: false, oBias: false, mlpBias: false };
    }
    default: {
      const never: never = family;
      throw new Error(`unknown family ${String(never)}`);
    }
  }
}

/** Mistral's window (default 4096, null for none); Qwen2's only with use_sliding_window (refused). */
function resolveSlidingWindow(raw: RawConfig, family: DecoderFamily, source: string): number | undefined {
  const kinds = raw.layer_types ?? [];
  const allowed = family === 'mistral' ? ['full_attention', 'sliding_attention'] : ['full_attention'];
  const odd = kinds.findIndex((k) => !allowed.includes(k));
  if (odd >= 0) {
    throw configError(source, `layer_types.${odd}`, `is '${kinds[odd]}'; ${family} layers here are ${allowed.map((k) => `'${k}'`).join(' or ')}`);
  }
  if (family === 'qwen2') {
    if (raw.use_sliding_window === true) {
      throw configError(source, 'use_sliding_window', 'is true; Qwen2 sliding-window attention (on the layers from max_window_layers) is not supported');
    }
    return undefined;
  }
  if (family !== 'mistral') return undefined;
  // MistralConfig's default is 4096; an explicit null turns it off.
  const window = raw.sliding_window === undefined ? 4096 : raw.sliding_window ?? undefined;
  // The window applies to every layer: per-layer kinds must all say so.
  const kind = window === undefined ? 'full_attention' : 'sliding_attention';
  const other = kinds.findIndex((k) => k !== kind);
  if (other >= 0) throw configError(source, `layer_types.${other}`, `is '${kinds[other]}'; with sliding_window ${window ?? 'null'} every layer is '${kind}'`);
  return window;
}

function positiveNumber(params: Record<string, unknown>, key: string, where: string, source: string): number {
  const v = params[key];
  if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) {
    throw configError(source, `${where}.${key}`, `must be a positive number for rope type 'llama3', got ${JSON.stringify(v)}`);
  }
  return v;
}

/**
 * rope_theta and the rope scaling: `rope_parameters` (transformers >= 4.57 / 5: rope_type and
 * rope_theta together) when present, else `rope_scaling` and the top-level `rope_theta`.
 * Types: none / `default` (plain RoPE) and `llama3`; anything else is refused.
 */
function resolveRope(raw: RawConfig, source: string): { ropeTheta: number; ropeScaling?: Llama3RopeScaling } {
  let theta = raw.rope_theta;
  let scaling: Llama3RopeScaling | undefined;
  for (const key of ['rope_scaling', 'rope_parameters'] as const) {
    const value = raw[key];
    if (value === undefined || value === null) continue;
    if (typeof value !== 'object' || Array.isArray(value)) throw configError(source, key, `must be an object or null, got ${JSON.stringify(value)}`);
    const params = value as Record<string, unknown>;
    if ('rope_theta' in params) theta = positiveNumber(params, 'rope_theta', key, source);
    const prf = params['partial_rotary_factor'];
    if (prf !== undefined && prf !== 1) throw configError(source, `${key}.partial_rotary_factor`, `is ${JSON.stringify(prf)}; only full rotary embeddings (1) are supported`);
    const type = ropeType(params);
    if (type === 'default') continue;
    if (type !== 'llama3') {
      throw configError(source, key, `has rope type '${type}'; fedlora implements plain rotary embeddings ('default') and 'llama3' scaling, not linear, dynamic, yarn or longrope`);
    }
    scaling = {
      type: 'llama3',
      factor: positiveNumber(params, 'factor', key, source),
      lowFreqFactor: positiveNumber(params, 'low_freq_factor', key, source),
      highFreqFactor: positiveNumber(params, 'high_freq_factor', key, source),
      originalMaxPositionEmbeddings: positiveNumber(params, 'original_max_position_embeddings', key, source),
    };
    if (!(scaling.highFreqFactor > scaling.lowFreqFactor)) {
      throw configError(source, `${key}.high_freq_factor`, `(${scaling.highFreqFactor}) must exceed low_freq_factor (${scaling.lowFreqFactor})`);
    }
  }
  return { ropeTheta: theta, ...(scaling === undefined ? {} : { ropeScaling: scaling }) };
}

function refuseUnsupported(raw: RawConfig, source: string): void {
  if (raw.hidden_act !== 'silu') {
    throw configError(source, 'hidden_act', `is '${raw.hidden_act}'; only 'silu' (SwiGLU) is supported`);
  }
  if (raw.attention_dropout !== 0) {
    throw configError(source, 'attention_dropout', `is ${raw.attention_dropout}; only 0 is supported`);
  }
}

/**
 * Validates a parsed `config.json` and resolves it.
 * @param json the parsed JSON object
 * @param source the file it came from, for error messages
 * @throws FedloraError FL_ERR_MODEL_CONFIG naming the key and the problem
 */
export function parseLlamaConfig(json: unknown, source = 'config.json'): LlamaConfig {
  // Another kind of model (e.g. a vision model's folder) is named as such, before the decoder's
  // keys it lacks: "'vocab_size' ... undefined" would hide what is wrong.
  const type = typeof json === 'object' && json !== null ? (json as { model_type?: unknown }).model_type : undefined;
  if (typeof type === 'string' && !(DECODER_FAMILIES as readonly string[]).includes(type)) {
    throw configError(source, 'model_type', `is '${type}'; fedlora's decoder loads ${DECODER_FAMILIES.map((f) => `'${f}'`).join(', ')}`);
  }
  const parsed = configSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = issue.path.join('.') || '(root)';
    throw configError(source, key, issue.message);
  }
  const raw = parsed.data;
  const family = familyOf(raw, source);
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
  const slidingWindow = resolveSlidingWindow(raw, family, source);
  return Object.freeze({
    modelType: family,
    vocabSize: raw.vocab_size,
    hiddenSize: raw.hidden_size,
    intermediateSize: raw.intermediate_size,
    numLayers: raw.num_hidden_layers,
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: raw.rms_norm_eps,
    ...resolveRope(raw, source),
    maxPositionEmbeddings: raw.max_position_embeddings ?? FAMILY_DEFAULTS[family].maxPositionEmbeddings,
    tieWordEmbeddings: raw.tie_word_embeddings,
    ...resolveBiases(raw, family, source),
    ...(slidingWindow === undefined ? {} : { slidingWindow }),
    ...(raw.bos_token_id != null ? { bosTokenId: raw.bos_token_id } : {}),
    ...(eos != null ? { eosTokenId: eos } : {}),
    ...(raw.pad_token_id != null ? { padTokenId: raw.pad_token_id } : {}),
  });
}

const ARCHITECTURES: Record<DecoderFamily, string> = { llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM' };

/**
 * The `config.json` transformers writes for this configuration (`LlamaForCausalLM`,
 * `MistralForCausalLM` or `Qwen2ForCausalLM`), so a model we save loads with
 * `AutoModelForCausalLM.from_pretrained(dir)` and with our own loader to the same configuration.
 */
export function llamaConfigToJson(c: LlamaConfig): Record<string, unknown> {
  const scaling = c.ropeScaling === undefined ? null : {
    rope_type: 'llama3',
    factor: c.ropeScaling.factor,
    low_freq_factor: c.ropeScaling.lowFreqFactor,
    high_freq_factor: c.ropeScaling.highFreqFactor,
    original_max_position_embeddings: c.ropeScaling.originalMaxPositionEmbeddings,
  };
  return {
    architectures: [ARCHITECTURES[c.modelType]],
    model_type: c.modelType,
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
    rope_scaling: scaling,
    max_position_embeddings: c.maxPositionEmbeddings,
    tie_word_embeddings: c.tieWordEmbeddings,
    ...(c.modelType === 'llama' ? { attention_bias: c.qkvBias, mlp_bias: c.mlpBias, pretraining_tp: 1 } : {}),
    ...(c.modelType === 'mistral' ? { sliding_window: c.slidingWindow ?? null } : {}),
    ...(c.modelType === 'qwen2' ? { use_sliding_window: false } : {}),
    attention_dropout: 0,
    initializer_range: 0.02,
    torch_dtype: 'float32',
    ...(c.bosTokenId !== undefined ? { bos_token_id: c.bosTokenId } : {}),
    ...(c.eosTokenId !== undefined ? { eos_token_id: c.eosTokenId } : {}),
    ...(c.padTokenId !== undefined ? { pad_token_id: c.padTokenId } : {}),
  };
}

/** Number of parameters of the base model (embeddings, norms, projections and their biases, untied lm_head). */
export function llamaParameterCount(c: LlamaConfig): number {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const biases = (c.qkvBias ? q + 2 * kv : 0) + (c.oBias ? c.hiddenSize : 0) + (c.mlpBias ? 2 * c.intermediateSize + c.hiddenSize : 0);
  const perLayer = c.hiddenSize * (q + 2 * kv) + q * c.hiddenSize + 3 * c.hiddenSize * c.intermediateSize + 2 * c.hiddenSize + biases;
  const head = c.tieWordEmbeddings ? 0 : c.vocabSize * c.hiddenSize;
  return c.vocabSize * c.hiddenSize + c.numLayers * perLayer + c.hiddenSize + head;
}
