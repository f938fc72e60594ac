/**
 * Hugging Face PEFT adapter directories: `adapter_config.json` + `adapter_model.safetensors`, as
 * `PeftModel.from_pretrained(base_model, dir)` loads them (docs/formats.md).
 *
 * How PEFT reads what we write (peft/src/peft/tuners/tuners_utils.py `check_target_module_exists`,
 * peft/src/peft/utils/other.py `get_pattern_key`): `target_modules` as a list matches a module
 * whose name equals an entry or ends with `.<entry>`, so we list the full module paths; a
 * `rank_pattern` / `alpha_pattern` key is a regex matched as `(.*\.)?(<key>)$` (older releases:
 * an exact key), so full paths of dot-separated identifiers match exactly the module they name.
 */
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  adapterFromTensors,
  compareModulePaths,
  foldRIntoB,
  parsePeftTensorName,
  peftTensorNames,
  validateAdapter,
  type Adapter,
  type AdapterModule,
  type ModuleFactors,
} from './adapter.js';
import {
  configError,
  parseConfig,
  FedloraAdapterMetadataSchema,
  PeftLoraConfigSchema,
  WrittenAdapterConfigSchema,
  type FedloraAdapterMetadata,
  type PeftLoraConfig,
} from './config.js';
import { FedloraError } from './errors.js';
import { keysInTextOrder } from './json-keys.js';
import { readSafetensorsFile, writeSafetensorsFile } from './safetensors/index.js';
import { makeTensor, type Tensor } from './tensor.js';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
/** Key of fedlora's record in adapter_config.json and in the safetensors `__metadata__`. */
export const FEDLORA_METADATA_KEY = 'fedlora';

/**
 * Name of the unfolded Fed-SB B, written only when a folded export also keeps R
 * (`includeFedSbR` with `foldFedSb`), so that fedlora can read the exact A, B, R back.
 */
export function fedSbUnfoldedBName(path: string): string {
  return `base_model.model.${path}.fedsb_B.weight`;
}
const FEDSB_B_NAME = /^base_model\.model\.(.+)\.fedsb_B\.weight$/;

export interface WritePeftOptions {
  /** Fed-SB: write B' = B R as `lora_B`, so PEFT computes s B R A. @default true */
  readonly foldFedSb?: boolean;
  /**
   * Fed-SB: also write R (`fedsb_R.weight`); with `foldFedSb`, the unfolded B too
   * (`fedsb_B.weight`). PEFT ignores these extra tensors. @default !foldFedSb
   */
  readonly includeFedSbR?: boolean;
  /** PEFT's `base_model_name_or_path`. @default the layout's baseModelName, else null */
  readonly baseModelName?: string;
  /** PEFT's `task_type`; null for a model that is not a transformers task model. @default 'CAUSAL_LM' */
  readonly taskType?: string | null;
  /**
   * Put fedlora's record under the `fedlora` key of adapter_config.json. PEFT >= 0.13 ignores the
   * key with a warning; older PEFT refuses unknown keys, so pass false for those (the record
   * stays in the safetensors metadata). @default true
   */
  readonly fedloraConfigKey?: boolean;
}

/** The most frequent value (ties: the smallest), PEFT's default `r` / `lora_alpha`. */
function mostCommon(values: readonly number[]): number {
  const counts = new Map<number, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  let best = values[0]!;
  for (const [v, c] of counts) if (c > counts.get(best)! || (c === counts.get(best)! && v < best)) best = v;
  return best;
}

/**
 * PEFT's `get_pattern_key`: the first pattern key whose regex `(.*\.)?(<key>)$` matches the
 * module name, else the name itself (so an exact key still matches).
 */
export function peftPatternKey(keys: readonly string[], moduleName: string, what: string): string {
  for (const key of keys) {
    let regex: RegExp;
    try {
      regex = new RegExp(`^(.*\\.)?(${key})$`);
    } catch (e) {
      throw new FedloraError('FL_ERR_ADAPTER_DIR', `${what}: key '${key}' is not a regular expression fedlora can read`, { key }, { cause: e });
    }
    if (regex.test(moduleName)) return key;
  }
  return moduleName;
}

/**
 * PEFT's `check_target_module_exists` for a list (an exact name or a `.<entry>` suffix) or a
 * string (a regex the whole name must match; `all-linear` selects every module asked about).
 * Exclusions are checked by the caller the same way.
 * @param what names the config key in the error for a regex fedlora cannot read
 */
export function peftTargetMatches(targets: readonly string[] | string, moduleName: string, what = 'target_modules'): boolean {
  // PEFT's shorthand for every linear layer but the output head; the modules asked about here are linear ones.
  if (targets === 'all-linear') return true;
  if (typeof targets === 'string') {
    let regex: RegExp;
    try {
      regex = new RegExp(`^(?:${targets})$`);
    } catch (e) {
      throw new FedloraError('FL_ERR_ADAPTER_DIR', `${what}: '${targets}' is not a regular expression fedlora can read`, { key: what }, { cause: e });
    }
    return regex.test(moduleName);
  }
  return targets.includes(moduleName) || targets.some((t) => moduleName.endsWith(`.${t}`));
}

/**
 * A `rank_pattern` / `alpha_pattern` as PEFT sees it: its entries in the order of the JSON text
 * (Python keeps it; a JS object would move integer-like keys such as "0" to the front).
 */
export type PatternEntries = ReadonlyArray<readonly [string, number]>;

/** What decides a module's rank and alpha in a PEFT LoRA config. */
export interface PeftRankRules {
  readonly r: number;
  readonly loraAlpha: number;
  readonly rankPattern: PatternEntries;
  readonly alphaPattern: PatternEntries;
  readonly useRslora: boolean;
}

/** `pattern.get(get_pattern_key(pattern.keys(), path), default)`; a duplicate key holds its last value, as in a Python dict. */
function patternValue(entries: PatternEntries, path: string, fallback: number, what: string): number {
  const key = peftPatternKey(entries.map(([k]) => k), path, what);
  for (let i = entries.length - 1; i >= 0; i--) if (entries[i]![0] === key) return entries[i]![1];
  return fallback;
}

/** The rank and alpha PEFT gives a module (alpha as fedlora means it: s = alpha / r). */
export function resolvePeftModule(rules: PeftRankRules, path: string, what: string): { rank: number; alpha: number } {
  const rank = patternValue(rules.rankPattern, path, rules.r, `${what} rank_pattern`);
  const peftAlpha = patternValue(rules.alphaPattern, path, rules.loraAlpha, `${what} alpha_pattern`);
  // rsLoRA scales by alpha / sqrt(r); the same update in fedlora's alpha / r is alpha * sqrt(r).
  const alpha = rules.useRslora ? peftAlpha * Math.sqrt(rank) : peftAlpha;
  return { rank, alpha };
}

/**
 * adapter_config.json text: keys sorted and indented by 2, as PEFT's save_pretrained writes it, with
 * the pattern entries in their given order (written by hand for that reason).
 */
function configText(fields: Readonly<Record<string, unknown>>, patterns: { rank_pattern: PatternEntries; alpha_pattern: PatternEntries }): string {
  const patternText = (entries: PatternEntries): string =>
    entries.length === 0 ? '{}' : `{\n${entries.map(([k, v]) => `    ${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(',\n')}\n  }`;
  const all: Record<string, string> = {};
  for (const [k, v] of Object.entries(fields)) all[k] = JSON.stringify(v, null, 2).replace(/\n/g, '\n  ');
  all.rank_pattern = patternText(patterns.rank_pattern);
  all.alpha_pattern = patternText(patterns.alpha_pattern);
  const keys = Object.keys(all).sort();
  return `{\n${keys.map((k) => `  ${JSON.stringify(k)}: ${all[k]}`).join(',\n')}\n}\n`;
}

/**
 * Builds adapter_config.json for a layout: the most common rank and alpha as `r` and
 * `lora_alpha`, `rank_pattern` / `alpha_pattern` for the modules that differ (longest paths
 * first, so a path that ends another one is tried first), and the full paths as target_modules.
 * Checks that PEFT's matching gives every module its rank and alpha back; if not, lists every
 * module in the patterns; if still not, refuses.
 * @returns the JSON text
 */
function buildAdapterConfig(modules: readonly AdapterModule[], base: Readonly<Record<string, unknown>>, dir: string): string {
  const r = mostCommon(modules.map((m) => m.rank));
  const loraAlpha = mostCommon(modules.map((m) => m.alpha));
  const byLength = [...modules].sort((a, b) => b.path.length - a.path.length || compareModulePaths(a.path, b.path));
  const targets = modules.map((m) => m.path);
  for (const everyModule of [false, true]) {
    const rules: PeftRankRules = {
      r,
      loraAlpha,
      rankPattern: byLength.filter((m) => everyModule || m.rank !== r).map((m) => [m.path, m.rank] as const),
      alphaPattern: byLength.filter((m) => everyModule || m.alpha !== loraAlpha).map((m) => [m.path, m.alpha] as const),
      useRslora: false,
    };
    const resolvesExactly = modules.every((m) => {
      const got = resolvePeftModule(rules, m.path, dir);
      return got.rank === m.rank && got.alpha === m.alpha && peftTargetMatches(targets, m.path);
    });
    if (resolvesExactly) {
      return configText({ ...base, r, lora_alpha: loraAlpha, target_modules: targets }, { rank_pattern: rules.rankPattern, alpha_pattern: rules.alphaPattern });
    }
  }
  throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `${dir}: the module paths cannot be given their ranks and alphas unambiguously in PEFT's rank_pattern / alpha_pattern`);
}

/** Writes a file through a temporary name, so readers never see half of it. */
async function writeFileAtomic(path: string, text: string): Promise<void> {
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(temp, text);
    await rename(temp, path);
  } catch (e) {
    await rm(temp, { force: true });
    throw new FedloraError('FL_ERR_IO', `${path}: cannot write (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { path }, { cause: e });
  }
}

/**
 * Writes an adapter as a PEFT LoRA directory that `PeftModel.from_pretrained` loads: lora_A / lora_B
 * tensors (F32) and an adapter_config.json with peft_type LORA, r, lora_alpha, rank/alpha patterns
 * for modules that differ, lora_dropout 0, bias none, inference_mode true, and fedlora's record.
 * A Fed-SB adapter is folded by default (B' = B R, docs/strategies.md, "fedsb"), which is exact: s B' A = s B R A.
 * @param dir created when missing; existing adapter files in it are replaced
 * @throws FedloraError FL_ERR_ADAPTER_LAYOUT for an adapter that does not match its layout
 */
export async function writePeftAdapterDir(dir: string, adapter: Adapter, options: WritePeftOptions = {}): Promise<void> {
  validateAdapter(adapter, { source: dir });
  const { layout } = adapter;
  const isFedSb = layout.variant === 'fedsb';
  const fold = options.foldFedSb ?? true;
  const includeR = options.includeFedSbR ?? !fold;
  if (isFedSb && !fold && !includeR) {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `${dir}: a fedsb adapter written with foldFedSb false needs includeFedSbR (R would be lost)`);
  }

  const tensors: Tensor[] = [];
  for (const m of layout.modules) {
    const f: ModuleFactors = adapter.factors.get(m.path)!;
    const names = peftTensorNames(m.path);
    tensors.push(makeTensor(names.A, [m.rank, m.inFeatures], f.A!));
    const B = isFedSb && fold ? foldRIntoB(f.B!, f.R!, m.outFeatures, m.rank) : f.B!;
    tensors.push(makeTensor(names.B, [m.outFeatures, m.rank], B));
    if (isFedSb && includeR) {
      tensors.push(makeTensor(names.R, [m.rank, m.rank], f.R!));
      if (fold) tensors.push(makeTensor(fedSbUnfoldedBName(m.path), [m.outFeatures, m.rank], f.B!));
    }
  }

  const record: FedloraAdapterMetadata = {
    format_version: 1,
    variant: layout.variant,
    ...(layout.baseModelSha256 !== undefined && { base_model_sha256: layout.baseModelSha256 }),
    ...(isFedSb && { fedsb_folded: fold }),
  };
  const text = buildAdapterConfig(
    layout.modules,
    {
      base_model_name_or_path: options.baseModelName ?? layout.baseModelName ?? null,
      bias: 'none',
      fan_in_fan_out: false,
      ...(options.fedloraConfigKey !== false && { fedlora: record }),
      inference_mode: true,
      init_lora_weights: true,
      layers_pattern: null,
      layers_to_transform: null,
      lora_dropout: 0,
      modules_to_save: null,
      peft_type: 'LORA',
      revision: null,
      task_type: options.taskType === undefined ? 'CAUSAL_LM' : options.taskType,
    },
    dir,
  );
  // An internal check: a failure here is a fedlora bug, reported with the field that broke.
  parseConfig(WrittenAdapterConfigSchema, JSON.parse(text), `${join(dir, ADAPTER_CONFIG_FILE)} (as written)`, 'FL_ERR_ADAPTER_LAYOUT');

  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw new FedloraError('FL_ERR_IO', `${dir}: cannot create the directory (${(e as NodeJS.ErrnoException).code})`, { path: dir }, { cause: e });
  }
  await writeSafetensorsFile(join(dir, ADAPTER_WEIGHTS_FILE), tensors, { format: 'pt', [FEDLORA_METADATA_KEY]: JSON.stringify(record) });
  await writeFileAtomic(join(dir, ADAPTER_CONFIG_FILE), text);
}

function dirError(dir: string, file: string | undefined, problem: string, details: Record<string, unknown> = {}): FedloraError {
  const where = file === undefined ? dir : join(dir, file);
  return new FedloraError('FL_ERR_ADAPTER_DIR', `${where}: ${problem}`, { dir, ...(file !== undefined && { file }), ...details });
}

function adapterLayoutError(dir: string, problem: string, details: Record<string, unknown> = {}): FedloraError {
  return new FedloraError('FL_ERR_ADAPTER_LAYOUT', `${join(dir, ADAPTER_WEIGHTS_FILE)}: ${problem}`, { dir, ...details });
}

/** Refuses the LoRA features fedlora's Adapter cannot hold, naming the config key. */
function refuseUnsupported(config: PeftLoraConfig, dir: string): void {
  const refuse = (key: string, why: string): never => {
    throw dirError(dir, ADAPTER_CONFIG_FILE, `${key}: ${why}`, { field: key });
  };
  if (config.use_dora) refuse('use_dora', 'DoRA adapters are not supported (fedlora reads plain LoRA)');
  if (config.bias !== undefined && config.bias !== 'none') refuse('bias', `"${config.bias}" is not supported; fedlora adapters train no biases ("none")`);
  if (config.modules_to_save && config.modules_to_save.length > 0) refuse('modules_to_save', 'fully trained modules are not supported');
  if (config.layers_to_transform !== undefined && config.layers_to_transform !== null) refuse('layers_to_transform', 'is not supported; name the modules in target_modules');
  if (config.layer_replication !== undefined && config.layer_replication !== null) refuse('layer_replication', 'is not supported');
  if (config.lora_bias) refuse('lora_bias', 'is not supported');
  if (config.target_parameters && config.target_parameters.length > 0) refuse('target_parameters', 'is not supported');
  if (config.target_modules === undefined || config.target_modules === null) refuse('target_modules', 'is missing');
}

async function readJson(dir: string, file: string): Promise<{ text: string; value: unknown }> {
  let text: string;
  try {
    text = await readFile(join(dir, file), 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw dirError(dir, file, code === 'ENOENT' ? 'missing' : `cannot read (${code})`);
  }
  try {
    return { text, value: JSON.parse(text) };
  } catch (e) {
    throw dirError(dir, file, `not JSON (${(e as Error).message})`);
  }
}

/** A pattern's entries in text order (PEFT matches the first key that fits, in Python's dict order). */
function patternEntries(text: string, key: 'rank_pattern' | 'alpha_pattern', pattern: Readonly<Record<string, number>> | null | undefined): PatternEntries {
  if (pattern === null || pattern === undefined) return [];
  return (keysInTextOrder(text, [key]) ?? []).map((k) => [k, pattern[k]!] as const);
}

/** fedlora's record: from adapter_config.json when there, else from the safetensors metadata. */
function fedloraRecord(config: PeftLoraConfig, metadata: Readonly<Record<string, string>> | undefined, dir: string): FedloraAdapterMetadata | undefined {
  if (config.fedlora !== undefined) return config.fedlora;
  const raw = metadata?.[FEDLORA_METADATA_KEY];
  if (raw === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw dirError(dir, ADAPTER_WEIGHTS_FILE, `__metadata__.${FEDLORA_METADATA_KEY} is not JSON`);
  }
  const result = FedloraAdapterMetadataSchema.safeParse(value);
  if (!result.success) throw configError(result.error, `${join(dir, ADAPTER_WEIGHTS_FILE)} __metadata__.${FEDLORA_METADATA_KEY}`, 'FL_ERR_ADAPTER_DIR');
  return result.data;
}

/** Largest |x - y| relative to max |y| (0 for two zero arrays). */
function relativeMaxDifference(x: Float32Array, y: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < x.length; i++) {
    diff = Math.max(diff, Math.abs(x[i]! - y[i]!));
    scale = Math.max(scale, Math.abs(y[i]!));
  }
  return scale === 0 ? diff : diff / scale;
}

/**
 * Reads a PEFT LoRA directory (from fedlora or from PEFT) into an Adapter. Ranks come from the
 * tensor shapes and must agree with the config's `r` / `rank_pattern`; alphas come from
 * `lora_alpha` / `alpha_pattern` (an rsLoRA alpha is converted to fedlora's alpha / r scaling).
 * With `fedsb_R` tensors the adapter is `fedsb` (A, B, R); a folded Fed-SB export without them reads
 * back as plain `lora` holding B' = B R; otherwise the variant is fedlora's record's, or `lora`.
 * @throws FedloraError FL_ERR_ADAPTER_DIR (missing or malformed files, unsupported config keys),
 *   FL_ERR_ADAPTER_LAYOUT (tensors that do not form an adapter), FL_ERR_SAFETENSORS_* (a bad file);
 *   each message names the directory, the file, the tensor and the problem.
 */
export async function readPeftAdapterDir(dir: string): Promise<Adapter> {
  try {
    if (!(await stat(dir)).isDirectory()) throw dirError(dir, undefined, 'is not a directory');
  } catch (e) {
    if (e instanceof FedloraError) throw e;
    throw dirError(dir, undefined, `cannot open the adapter directory (${(e as NodeJS.ErrnoException).code})`);
  }
  const raw = await readJson(dir, ADAPTER_CONFIG_FILE);
  const parsed = PeftLoraConfigSchema.safeParse(raw.value);
  if (!parsed.success) throw configError(parsed.error, join(dir, ADAPTER_CONFIG_FILE), 'FL_ERR_ADAPTER_DIR');
  const config = parsed.data;
  refuseUnsupported(config, dir);
  const rules: PeftRankRules = {
    r: config.r,
    loraAlpha: config.lora_alpha,
    rankPattern: patternEntries(raw.text, 'rank_pattern', config.rank_pattern),
    alphaPattern: patternEntries(raw.text, 'alpha_pattern', config.alpha_pattern),
    useRslora: config.use_rslora ?? false,
  };
  const targets = config.target_modules!;

  const weightsPath = join(dir, ADAPTER_WEIGHTS_FILE);
  try {
    await stat(weightsPath);
  } catch {
    const hasBin = await stat(join(dir, 'adapter_model.bin')).then(() => true, () => false);
    throw dirError(dir, ADAPTER_WEIGHTS_FILE, hasBin ? 'missing (the directory holds adapter_model.bin: fedlora reads safetensors only; save with safe_serialization=True)' : 'missing');
  }
  const { tensors, metadata } = await readSafetensorsFile(weightsPath);
  const record = fedloraRecord(config, metadata, dir);

  const unfoldedB = new Map<string, Tensor>();
  const peftTensors: Tensor[] = [];
  for (const t of tensors) {
    const match = FEDSB_B_NAME.exec(t.name);
    if (match === null) peftTensors.push(t);
    else unfoldedB.set(match[1]!, t);
  }
  const hasR = peftTensors.some((t) => parsePeftTensorName(t.name)?.factor === 'R');
  if (!hasR && record?.variant === 'fedsb' && record.fedsb_folded === false) {
    // lora_B holds the unfolded B: without R, reading it as LoRA would give a wrong update.
    throw adapterLayoutError(dir, `fedlora record says lora_B holds Fed-SB's unfolded B, but no '${peftTensorNames('<module>').R}' tensors are there`);
  }
  // A folded Fed-SB export is a plain LoRA adapter.
  const variant = hasR ? 'fedsb' : record === undefined || record.variant === 'fedsb' ? 'lora' : record.variant;

  // Module order: target_modules when it lists the paths (as fedlora writes it), else natural order.
  const paths = new Set<string>();
  for (const t of peftTensors) {
    const parsed = parsePeftTensorName(t.name);
    if (parsed !== undefined) paths.add(parsed.path);
  }
  const listed = Array.isArray(targets) ? targets.filter((p) => paths.has(p)) : [];
  const moduleOrder = listed.length === paths.size && new Set(listed).size === listed.length ? listed : [...paths].sort(compareModulePaths);

  const what = join(dir, ADAPTER_CONFIG_FILE);
  let adapter = adapterFromTensors(peftTensors, {
    alpha: (path) => resolvePeftModule(rules, path, what).alpha,
    variant,
    moduleOrder,
    ...(record?.base_model_sha256 !== undefined && { baseModelSha256: record.base_model_sha256 }),
    ...(config.base_model_name_or_path != null && { baseModelName: config.base_model_name_or_path }),
    source: weightsPath,
  });

  const excluded = config.exclude_modules;
  for (const m of adapter.layout.modules) {
    const names = peftTensorNames(m.path);
    if (!peftTargetMatches(targets, m.path, `${what} target_modules`) || (excluded != null && peftTargetMatches(excluded, m.path, `${what} exclude_modules`))) {
      throw adapterLayoutError(dir, `tensor '${names.A}' belongs to module '${m.path}', which target_modules ${JSON.stringify(targets)} does not select: PEFT would ignore it`, {
        tensor: names.A,
      });
    }
    const expected = resolvePeftModule(rules, m.path, what).rank;
    if (expected !== m.rank) {
      throw adapterLayoutError(dir, `tensor '${names.A}' has rank ${m.rank}, but ${ADAPTER_CONFIG_FILE} gives module '${m.path}' r = ${expected}`, { tensor: names.A });
    }
  }
  for (const path of unfoldedB.keys()) {
    if (!adapter.factors.has(path) || variant !== 'fedsb') {
      throw adapterLayoutError(dir, `tensor '${fedSbUnfoldedBName(path)}' needs the module's lora_A, lora_B and fedsb_R`, { tensor: fedSbUnfoldedBName(path) });
    }
  }

  if (variant === 'fedsb' && unfoldedB.size > 0) {
    // A folded export that kept R: lora_B holds B R, fedsb_B holds B. Restore B, checking lora_B = B R.
    const factors = new Map<string, ModuleFactors>();
    for (const m of adapter.layout.modules) {
      const f = adapter.factors.get(m.path)!;
      const b = unfoldedB.get(m.path);
      if (b === undefined) throw adapterLayoutError(dir, `module '${m.path}' lacks tensor '${fedSbUnfoldedBName(m.path)}' that the other modules have`, { tensor: fedSbUnfoldedBName(m.path) });
      if (b.shape[0] !== m.outFeatures || b.shape[1] !== m.rank) {
        throw adapterLayoutError(dir, `tensor '${b.name}' has shape [${b.shape.join(', ')}], expected [${m.outFeatures}, ${m.rank}]`, { tensor: b.name });
      }
      // Both sides are float32 roundings of the same float64 product; 1e-6 leaves room for another writer's summation order.
      const error = relativeMaxDifference(f.B!, foldRIntoB(b.data, f.R!, m.outFeatures, m.rank));
      if (!(error <= 1e-6)) {
        throw adapterLayoutError(dir, `tensor '${peftTensorNames(m.path).B}' is not fedsb_B @ fedsb_R (relative difference ${error.toExponential(2)})`, { tensor: peftTensorNames(m.path).B });
      }
      factors.set(m.path, { A: f.A!, B: b.data, R: f.R! });
    }
    adapter = { layout: adapter.layout, factors };
  } else if (variant === 'fedsb' && record?.fedsb_folded === true) {
    throw adapterLayoutError(dir, 'fedlora record says lora_B holds B R, but the unfolded fedsb_B tensors are missing, so B cannot be recovered');
  }
  validateAdapter(adapter, { source: dir });
  return adapter;
}
