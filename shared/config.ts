/**
 * Zod schemas of the configs of the formats layer, with their types inferred from them, and the
 * one way a zod failure becomes a coded error naming the field path (docs/architecture.md, "Conventions":
 * validate at the edge, fail early and state the rule).
 */
import { z } from 'zod';
import { FedloraError, type ErrorCode } from './errors.js';

/** `a.b[0].c` for zod's path [a, b, 0, c]; `(root)` for the empty path. */
export function formatFieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out === '' ? '(root)' : out;
}

/**
 * Turns a zod error into a FedloraError whose message names each failing field and its rule,
 * e.g. `FL_ERR_INVALID_CONFIG: job.json: modules[2].rank: Too small: expected number to be >=1`.
 * @param what names the config (a file path, "job spec") in the message
 * @param code @default 'FL_ERR_INVALID_CONFIG'
 */
export function configError(error: z.ZodError, what: string, code: ErrorCode = 'FL_ERR_INVALID_CONFIG'): FedloraError {
  const issues = error.issues.map((issue) => `${formatFieldPath(issue.path)}: ${issue.message}`);
  const first = error.issues[0];
  return new FedloraError(code, `${what}: ${issues.join('; ')}`, {
    issues,
    ...(first !== undefined && { field: formatFieldPath(first.path) }),
  });
}

/**
 * Parses `value` with `schema`, or throws configError's FedloraError.
 * @param code @default 'FL_ERR_INVALID_CONFIG'
 */
export function parseConfig<S extends z.ZodType>(schema: S, value: unknown, what: string, code: ErrorCode = 'FL_ERR_INVALID_CONFIG'): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw configError(result.error, what, code);
  return result.data;
}

const positiveInt = z.int().min(1);

/** Lower-case SHA-256 hex of a base model's weights file. */
export const Sha256HexSchema = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits (a SHA-256)');

/** One adapted module (shared/adapter.ts `AdapterModule`). */
export const AdapterModuleSchema = z.strictObject({
  path: z.string().regex(/^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$/, 'must be dot-separated names of [A-Za-z0-9_], e.g. model.layers.0.self_attn.q_proj'),
  outFeatures: positiveInt,
  inFeatures: positiveInt,
  rank: positiveInt,
  alpha: z.number().positive().finite(),
});

export const AdapterVariantSchema = z.enum(['lora', 'ffa', 'fedsb']);

/** An adapter layout (shared/adapter.ts `AdapterLayout`); module paths must be unique. */
export const AdapterLayoutSchema = z
  .strictObject({
    variant: AdapterVariantSchema,
    modules: z.array(AdapterModuleSchema).min(1),
    baseModelSha256: Sha256HexSchema.optional(),
    baseModelName: z.string().min(1).optional(),
  })
  .superRefine((layout, ctx) => {
    const seen = new Set<string>();
    layout.modules.forEach((m, i) => {
      if (seen.has(m.path)) ctx.addIssue({ code: 'custom', path: ['modules', i, 'path'], message: `module '${m.path}' appears twice` });
      seen.add(m.path);
    });
  });
export type AdapterLayoutConfig = z.infer<typeof AdapterLayoutSchema>;

/**
 * fedlora's own record in an exported adapter, under the `fedlora` key of adapter_config.json
 * and (as a JSON string) under `fedlora` in the safetensors `__metadata__`.
 */
export const FedloraAdapterMetadataSchema = z.strictObject({
  format_version: z.literal(1),
  /** The variant the adapter was trained as. */
  variant: AdapterVariantSchema,
  /** SHA-256 of the base model's weights file, when known. */
  base_model_sha256: Sha256HexSchema.optional(),
  /** Fed-SB only: true when lora_B holds B R (standard LoRA), false when it holds B and fedsb_R holds R. */
  fedsb_folded: z.boolean().optional(),
});
export type FedloraAdapterMetadata = z.infer<typeof FedloraAdapterMetadataSchema>;

/**
 * adapter_config.json exactly as writePeftAdapterDir writes it: only keys that PEFT's LoraConfig
 * has accepted since its 0.7 releases (plus `fedlora`, which writers may leave out).
 */
export const WrittenAdapterConfigSchema = z.strictObject({
  alpha_pattern: z.record(z.string(), z.number().positive()),
  base_model_name_or_path: z.string().nullable(),
  bias: z.literal('none'),
  fan_in_fan_out: z.literal(false),
  fedlora: FedloraAdapterMetadataSchema.optional(),
  inference_mode: z.literal(true),
  init_lora_weights: z.literal(true),
  layers_pattern: z.null(),
  layers_to_transform: z.null(),
  lora_alpha: z.number().positive(),
  lora_dropout: z.literal(0),
  modules_to_save: z.null(),
  peft_type: z.literal('LORA'),
  r: positiveInt,
  rank_pattern: z.record(z.string(), positiveInt),
  revision: z.null(),
  target_modules: z.array(z.string()).min(1),
  task_type: z.string().nullable(),
});
export type WrittenAdapterConfig = z.infer<typeof WrittenAdapterConfigSchema>;

/**
 * adapter_config.json as readPeftAdapterDir accepts it: a PEFT LoRA config from fedlora or from
 * PEFT itself. Unknown keys pass (PEFT versions add keys); the features fedlora cannot represent
 * are refused by the reader with a message naming the key.
 */
export const PeftLoraConfigSchema = z.looseObject({
  peft_type: z.literal('LORA', { message: 'fedlora reads LoRA adapters only (peft_type "LORA")' }),
  r: positiveInt,
  lora_alpha: z.number().positive().finite(),
  target_modules: z.union([z.array(z.string()), z.string()]).nullable().optional(),
  exclude_modules: z.union([z.array(z.string()), z.string()]).nullable().optional(),
  rank_pattern: z.record(z.string(), positiveInt).nullable().optional(),
  alpha_pattern: z.record(z.string(), z.number().positive().finite()).nullable().optional(),
  use_rslora: z.boolean().optional(),
  use_dora: z.boolean().optional(),
  bias: z.string().optional(),
  modules_to_save: z.array(z.string()).nullable().optional(),
  layers_to_transform: z.union([z.array(z.int()), z.int()]).nullable().optional(),
  layer_replication: z.unknown().optional(),
  lora_bias: z.boolean().optional(),
  target_parameters: z.array(z.string()).nullable().optional(),
  base_model_name_or_path: z.string().nullable().optional(),
  fedlora: FedloraAdapterMetadataSchema.optional(),
});
export type PeftLoraConfig = z.infer<typeof PeftLoraConfigSchema>;
