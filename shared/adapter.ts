/**
 * The adapter layout shared by every folder: which modules carry LoRA factors, their shapes,
 * ranks and alpha, and the PEFT tensor names (PAPERS.md notation: W0 is [m, n],
 * A is [r, n], B is [m, r], dW = s * B @ A with s = alpha / r; Fed-SB adds R [r, r], dW = s * B R A).
 */

/** `lora`: A and B trained. `ffa`: A frozen, B trained. `fedsb`: A and B frozen, R trained. */
export type AdapterVariant = 'lora' | 'ffa' | 'fedsb';

export interface AdapterModule {
  /** Hugging Face module path, e.g. `model.layers.3.self_attn.q_proj`. */
  readonly path: string;
  /** m: rows of W0 (outputs). */
  readonly outFeatures: number;
  /** n: columns of W0 (inputs). */
  readonly inFeatures: number;
  /** r of this module. */
  readonly rank: number;
  /** LoRA alpha of this module; the scaling is alpha / rank. */
  readonly alpha: number;
}

export interface AdapterLayout {
  readonly variant: AdapterVariant;
  readonly modules: readonly AdapterModule[];
  /** SHA-256 (hex) of the base model's weights file, when known. */
  readonly baseModelSha256?: string;
  /** The base model's name or path as PEFT's `base_model_name_or_path`, when known. */
  readonly baseModelName?: string;
}

/** The factors of one module, row-major. Which ones are present depends on the variant and the use. */
export interface ModuleFactors {
  /** [rank, inFeatures] */
  readonly A?: Float32Array;
  /** [outFeatures, rank] */
  readonly B?: Float32Array;
  /** [rank, rank], Fed-SB only */
  readonly R?: Float32Array;
}

export interface Adapter {
  readonly layout: AdapterLayout;
  /** Keyed by module path. */
  readonly factors: ReadonlyMap<string, ModuleFactors>;
}

/** The scaling s = alpha / r of a module. */
export function scaling(module: AdapterModule): number {
  return module.alpha / module.rank;
}

/** PEFT tensor names of a module; `R` is fedlora's own key for Fed-SB, folded away on export. */
export function peftTensorNames(path: string): { A: string; B: string; R: string } {
  const prefix = `base_model.model.${path}`;
  return { A: `${prefix}.lora_A.weight`, B: `${prefix}.lora_B.weight`, R: `${prefix}.fedsb_R.weight` };
}
