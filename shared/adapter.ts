/**
 * The adapter layout shared by every folder: which modules carry LoRA factors, their shapes,
 * ranks and alpha, and the PEFT tensor names (the notation of docs/strategies.md: W0 is [m, n],
 * A is [r, n], B is [m, r], dW = s * B @ A with s = alpha / r; Fed-SB adds R [r, r], dW = s * B R A).
 * docs/formats.md describes the PEFT naming and the Fed-SB folding.
 */
import { FedloraError } from './errors.js';
import { makeTensor, type Tensor } from './tensor.js';

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

// ---------------------------------------------------------------------------------------------
// Layout checks, conversion to and from PEFT-named tensors, and Fed-SB folding.

/** The factor names of ModuleFactors. */
export type FactorName = 'A' | 'B' | 'R';

/**
 * Module paths fedlora accepts: dot-separated Python identifiers and indices, as Hugging Face
 * module names are. Keeping regex characters out means PEFT's pattern matching of
 * `rank_pattern` keys cannot misfire (docs/formats.md).
 */
const MODULE_PATH = /^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$/;

/** The factors a complete adapter of each variant holds (for export, or as a global state). */
export function requiredFactors(variant: AdapterVariant): readonly FactorName[] {
  return variant === 'fedsb' ? ['A', 'B', 'R'] : ['A', 'B'];
}

/** The shape of a factor of a module (docs/strategies.md notation: A [r, n], B [m, r], R [r, r]). */
export function factorShape(module: AdapterModule, factor: FactorName): [number, number] {
  switch (factor) {
    case 'A':
      return [module.rank, module.inFeatures];
    case 'B':
      return [module.outFeatures, module.rank];
    case 'R':
      return [module.rank, module.rank];
    default: {
      const unreachable: never = factor;
      throw new Error(`unreachable factor ${String(unreachable)}`);
    }
  }
}

function layoutError(source: string, problem: string, details: Record<string, unknown> = {}): FedloraError {
  return new FedloraError('FL_ERR_ADAPTER_LAYOUT', `${source}: ${problem}`, details);
}

/**
 * Checks a layout: a known variant, at least one module, unique well-formed paths, positive
 * integer shapes and ranks, and a positive finite alpha.
 * @param source names the adapter in messages @default 'adapter'
 */
export function validateLayout(layout: AdapterLayout, source = 'adapter'): void {
  if (!['lora', 'ffa', 'fedsb'].includes(layout.variant)) {
    throw layoutError(source, `variant must be lora, ffa or fedsb, got '${String(layout.variant)}'`);
  }
  if (layout.modules.length === 0) throw layoutError(source, 'the layout has no modules');
  const seen = new Set<string>();
  for (const m of layout.modules) {
    if (!MODULE_PATH.test(m.path)) {
      throw layoutError(source, `module path '${m.path}' must be dot-separated names of [A-Za-z0-9_]`, { module: m.path });
    }
    if (seen.has(m.path)) throw layoutError(source, `module '${m.path}' appears twice`, { module: m.path });
    seen.add(m.path);
    for (const field of ['outFeatures', 'inFeatures', 'rank'] as const) {
      if (!Number.isSafeInteger(m[field]) || m[field] < 1) {
        throw layoutError(source, `module '${m.path}': ${field} must be a positive integer, got ${m[field]}`, { module: m.path, field });
      }
    }
    if (!Number.isFinite(m.alpha) || m.alpha <= 0) {
      throw layoutError(source, `module '${m.path}': alpha must be a positive number, got ${m.alpha}`, { module: m.path, field: 'alpha' });
    }
  }
  if (layout.baseModelSha256 !== undefined && !/^[0-9a-f]{64}$/.test(layout.baseModelSha256)) {
    throw layoutError(source, `baseModelSha256 must be 64 lower-case hex digits, got '${layout.baseModelSha256}'`);
  }
}

/**
 * Checks an adapter against its layout: the layout itself, factors for exactly the layout's
 * modules, each required factor present, and every present factor of the length of its shape.
 * @param options.required factors every module must hold @default requiredFactors(variant)
 * @param options.source names the adapter in messages @default 'adapter'
 */
export function validateAdapter(adapter: Adapter, options: { required?: readonly FactorName[]; source?: string } = {}): void {
  const source = options.source ?? 'adapter';
  const { layout } = adapter;
  validateLayout(layout, source);
  const required = options.required ?? requiredFactors(layout.variant);
  const paths = new Set(layout.modules.map((m) => m.path));
  for (const path of adapter.factors.keys()) {
    if (!paths.has(path)) throw layoutError(source, `factors given for module '${path}', which the layout does not list`, { module: path });
  }
  for (const m of layout.modules) {
    const factors = adapter.factors.get(m.path);
    if (factors === undefined) throw layoutError(source, `module '${m.path}' has no factors`, { module: m.path });
    for (const f of ['A', 'B', 'R'] as const) {
      const data = factors[f];
      if (data === undefined) {
        if (required.includes(f)) throw layoutError(source, `module '${m.path}' lacks factor ${f}`, { module: m.path, factor: f });
        continue;
      }
      if (f === 'R' && layout.variant !== 'fedsb') {
        throw layoutError(source, `module '${m.path}' holds R, which only a fedsb adapter has (variant ${layout.variant})`, { module: m.path, factor: f });
      }
      const [rows, cols] = factorShape(m, f);
      if (!(data instanceof Float32Array) || data.length !== rows * cols) {
        throw layoutError(source, `module '${m.path}': ${f} must hold ${rows} x ${cols} = ${rows * cols} float32 values, got ${data.length}`, {
          module: m.path,
          factor: f,
        });
      }
    }
  }
}

/**
 * B' = B R for one module: folds Fed-SB's R into B so that s B' A = s B R A is a standard LoRA
 * update (docs/strategies.md, "fedsb"). Hand-written rather than ml-matrix: its element accessors make it
 * 1.5-4x slower here (bench/formats.bench.ts), and B is m x r with m in the thousands. Each entry
 * is a float64 dot product of a row of B with a column of R (R transposed once, so both are read
 * in order), rounded once to float32; four rows of B go together so each load of R serves four.
 * @param B [m, r], row-major
 * @param R [r, r], row-major
 */
export function foldRIntoB(B: Float32Array, R: Float32Array, m: number, r: number): Float32Array {
  if (B.length !== m * r || R.length !== r * r) {
    throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `foldRIntoB: B must be ${m} x ${r} and R ${r} x ${r}, got ${B.length} and ${R.length} values`);
  }
  const out = new Float32Array(m * r);
  const RT = new Float64Array(r * r);
  for (let k = 0; k < r; k++) for (let j = 0; j < r; j++) RT[j * r + k] = R[k * r + j]!;
  const rows = new Float64Array(4 * r);
  let i = 0;
  for (; i + 4 <= m; i += 4) {
    for (let k = 0; k < 4 * r; k++) rows[k] = B[i * r + k]!;
    for (let j = 0; j < r; j++) {
      const col = j * r;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let k = 0; k < r; k++) {
        const x = RT[col + k]!;
        s0 += rows[k]! * x;
        s1 += rows[r + k]! * x;
        s2 += rows[2 * r + k]! * x;
        s3 += rows[3 * r + k]! * x;
      }
      out[i * r + j] = s0;
      out[(i + 1) * r + j] = s1;
      out[(i + 2) * r + j] = s2;
      out[(i + 3) * r + j] = s3;
    }
  }
  for (; i < m; i++) {
    for (let j = 0; j < r; j++) {
      let sum = 0;
      for (let k = 0; k < r; k++) sum += B[i * r + k]! * RT[j * r + k]!;
      out[i * r + j] = sum;
    }
  }
  return out;
}

/**
 * Folds a Fed-SB adapter into standard LoRA for export: A stays, B becomes B R, R goes, and the
 * variant becomes `lora` (the scaling alpha / r is unchanged). Other variants come back as they are.
 */
export function foldFedSbAdapter(adapter: Adapter): Adapter {
  if (adapter.layout.variant !== 'fedsb') return adapter;
  validateAdapter(adapter, { source: 'fedsb adapter to fold' });
  const factors = new Map<string, ModuleFactors>();
  for (const m of adapter.layout.modules) {
    const f = adapter.factors.get(m.path)!;
    factors.set(m.path, { A: f.A!, B: foldRIntoB(f.B!, f.R!, m.outFeatures, m.rank) });
  }
  return { layout: { ...adapter.layout, variant: 'lora' }, factors };
}

/** What a PEFT tensor name says: the module path and the factor. */
export interface ParsedPeftName {
  readonly path: string;
  readonly factor: FactorName;
}

const PEFT_NAME = /^base_model\.model\.(.+)\.(lora_A|lora_B|fedsb_R)\.weight$/;
const FACTOR_OF_SUFFIX: Readonly<Record<string, FactorName>> = { lora_A: 'A', lora_B: 'B', fedsb_R: 'R' };

/**
 * Parses `base_model.model.<path>.lora_A.weight` (A), `.lora_B.weight` (B) or `.fedsb_R.weight` (R);
 * undefined for any other name.
 */
export function parsePeftTensorName(name: string): ParsedPeftName | undefined {
  const match = PEFT_NAME.exec(name);
  if (match === null) return undefined;
  return { path: match[1]!, factor: FACTOR_OF_SUFFIX[match[2]!]! };
}

/**
 * The adapter as PEFT-named F32 tensors, modules in layout order, A then B then R: A as
 * `lora_A.weight` [r, n], B as `lora_B.weight` [m, r], R as `fedsb_R.weight` [r, r]. Only present
 * factors are emitted (an FFA update may carry B alone).
 * @param options.foldFedSb for fedsb, emit B' = B R and no R @default false
 */
export function adapterToTensors(adapter: Adapter, options: { foldFedSb?: boolean } = {}): Tensor[] {
  const folded = options.foldFedSb ? foldFedSbAdapter(adapter) : adapter;
  validateAdapter(folded, { required: [] });
  const tensors: Tensor[] = [];
  for (const m of folded.layout.modules) {
    const f = folded.factors.get(m.path)!;
    const names = peftTensorNames(m.path);
    for (const factor of ['A', 'B', 'R'] as const) {
      const data = f[factor];
      if (data !== undefined) tensors.push(makeTensor(names[factor], factorShape(m, factor), data));
    }
  }
  return tensors;
}

/** Options of adapterFromTensors. */
export interface AdapterFromTensorsOptions {
  /** Alpha of each module, or one alpha for all. */
  readonly alpha: number | ((path: string, rank: number) => number);
  /** @default 'fedsb' when R tensors are present, else 'lora' */
  readonly variant?: AdapterVariant;
  /** Module order of the layout. @default natural order of the paths (layers.2 before layers.10) */
  readonly moduleOrder?: readonly string[];
  readonly baseModelSha256?: string;
  readonly baseModelName?: string;
  /** Factors every module must hold. @default requiredFactors(variant) */
  readonly required?: readonly FactorName[];
  /** Names the tensors' origin (a file) in messages. @default 'tensors' */
  readonly source?: string;
}

/**
 * Builds an adapter from PEFT-named tensors, inferring each module's m, n and r from the shapes.
 * Every tensor must be a PEFT LoRA (or Fed-SB R) weight, and a module's factors must agree on r.
 * @throws FedloraError FL_ERR_ADAPTER_LAYOUT naming the tensor and the problem
 */
export function adapterFromTensors(tensors: readonly Tensor[], options: AdapterFromTensorsOptions): Adapter {
  const source = options.source ?? 'tensors';
  const byModule = new Map<string, Partial<Record<FactorName, Tensor>>>();
  for (const t of tensors) {
    const parsed = parsePeftTensorName(t.name);
    if (parsed === undefined) {
      throw layoutError(source, `tensor '${t.name}' is not a LoRA weight (expected base_model.model.<module>.lora_A.weight, .lora_B.weight or .fedsb_R.weight)`, {
        tensor: t.name,
      });
    }
    if (t.shape.length !== 2) throw layoutError(source, `tensor '${t.name}' must be 2-D, got shape [${t.shape.join(', ')}]`, { tensor: t.name });
    const entry = byModule.get(parsed.path) ?? {};
    if (entry[parsed.factor] !== undefined) throw layoutError(source, `tensor '${t.name}' appears twice`, { tensor: t.name });
    entry[parsed.factor] = t;
    byModule.set(parsed.path, entry);
  }
  const hasR = [...byModule.values()].some((e) => e.R !== undefined);
  const variant = options.variant ?? (hasR ? 'fedsb' : 'lora');
  const required = options.required ?? requiredFactors(variant);
  const order = options.moduleOrder ?? [...byModule.keys()].sort(compareModulePaths);
  const modules: AdapterModule[] = [];
  const factors = new Map<string, ModuleFactors>();
  for (const path of order) {
    const entry = byModule.get(path);
    if (entry === undefined) throw layoutError(source, `module '${path}' has no tensors`, { module: path });
    const names = peftTensorNames(path);
    for (const f of required) {
      if (entry[f] === undefined) throw layoutError(source, `module '${path}' lacks tensor '${names[f]}'`, { module: path, tensor: names[f] });
    }
    const { A, B, R } = entry;
    const rank = A?.shape[0] ?? B?.shape[1] ?? R?.shape[0];
    if (rank === undefined) throw layoutError(source, `module '${path}' has no A, B or R tensor`, { module: path });
    const inFeatures = A?.shape[1];
    const outFeatures = B?.shape[0];
    if (B !== undefined && B.shape[1] !== rank) {
      throw layoutError(source, `tensor '${B.name}' has shape [${B.shape.join(', ')}] but '${A!.name}' has rank ${rank}: B must be [m, ${rank}]`, { tensor: B.name });
    }
    if (R !== undefined && (R.shape[0] !== rank || R.shape[1] !== rank)) {
      throw layoutError(source, `tensor '${R.name}' has shape [${R.shape.join(', ')}], expected [${rank}, ${rank}]`, { tensor: R.name });
    }
    if (inFeatures === undefined || outFeatures === undefined) {
      throw layoutError(source, `module '${path}' needs both '${names.A}' and '${names.B}' to know its shape`, { module: path });
    }
    const alpha = typeof options.alpha === 'number' ? options.alpha : options.alpha(path, rank);
    modules.push({ path, outFeatures, inFeatures, rank, alpha });
    factors.set(path, { ...(A && { A: A.data }), ...(B && { B: B.data }), ...(R && { R: R.data }) });
  }
  for (const path of byModule.keys()) {
    if (!order.includes(path)) throw layoutError(source, `module '${path}' has tensors but is not in the module order`, { module: path });
  }
  const layout: AdapterLayout = {
    variant,
    modules,
    ...(options.baseModelSha256 !== undefined && { baseModelSha256: options.baseModelSha256 }),
    ...(options.baseModelName !== undefined && { baseModelName: options.baseModelName }),
  };
  const adapter: Adapter = { layout, factors };
  validateAdapter(adapter, { required, source });
  return adapter;
}

/** Natural order of module paths: numeric parts compare as numbers, so layers.2 < layers.10. */
export function compareModulePaths(a: string, b: string): number {
  const pa = a.split('.');
  const pb = b.split('.');
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i]!;
    const y = pb[i]!;
    if (x === y) continue;
    const numeric = /^\d+$/.test(x) && /^\d+$/.test(y);
    if (numeric && Number(x) !== Number(y)) return Number(x) - Number(y);
    return x < y ? -1 : 1;
  }
  return pa.length - pb.length;
}
