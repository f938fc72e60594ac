/**
 * config.json of the `mlp` model: a classifier for numeric features, in a Hugging Face-like
 * layout we define. Weights in model.safetensors (PyTorch nn.Linear layout, weight [out, in]):
 *   input_norm.mean [input_size], input_norm.std [input_size]   (x -> (x - mean) / std)
 *   layers.{i}.weight [hidden_sizes[i], previous], layers.{i}.bias [hidden_sizes[i]]
 *   head.weight [num_labels, last hidden], head.bias [num_labels]
 * LoRA module paths: `layers.0`, `layers.1`, ..., `head`.
 */
import { z } from 'zod';
import { FedloraError } from '../../shared/errors.js';

export const MLP_MODEL_TYPE = 'fedlora_mlp';

export const MlpConfigSchema = z.object({
  model_type: z.literal(MLP_MODEL_TYPE),
  /** Number of input features. */
  input_size: z.number().int().positive(),
  /** Widths of the hidden layers, in order; may be empty (a linear classifier). */
  hidden_sizes: z.array(z.number().int().positive()),
  /** Number of classes. */
  num_labels: z.number().int().min(2),
  /** Activation between layers. @default 'relu' */
  hidden_act: z.enum(['relu', 'gelu', 'tanh']).default('relu'),
});

export type MlpConfig = z.infer<typeof MlpConfigSchema>;

/** @throws FL_ERR_MODEL_CONFIG naming the field and the rule */
export function parseMlpConfig(value: unknown, source: string): MlpConfig {
  const r = MlpConfigSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = issue.path.join('.') || '(root)';
    throw new FedloraError('FL_ERR_MODEL_CONFIG', `${source}: ${field}: ${issue.message}`, { file: source, field });
  }
  return r.data;
}

/** The dense layers of a config, in order: module path, inputs n, outputs m. */
export function mlpDenseLayers(config: MlpConfig): Array<{ path: string; inFeatures: number; outFeatures: number }> {
  const widths = [config.input_size, ...config.hidden_sizes, config.num_labels];
  return widths.slice(1).map((m, i) => ({
    path: i < config.hidden_sizes.length ? `layers.${i}` : 'head',
    inFeatures: widths[i]!,
    outFeatures: m,
  }));
}

/** Every tensor of an mlp checkpoint with its shape. */
export function mlpTensorShapes(config: MlpConfig): Map<string, number[]> {
  const shapes = new Map<string, number[]>([
    ['input_norm.mean', [config.input_size]],
    ['input_norm.std', [config.input_size]],
  ]);
  for (const l of mlpDenseLayers(config)) {
    shapes.set(`${l.path}.weight`, [l.outFeatures, l.inFeatures]);
    shapes.set(`${l.path}.bias`, [l.outFeatures]);
  }
  return shapes;
}
