/**
 * Loading a Hugging Face decoder checkpoint (Llama, Mistral, Qwen2: client/models/llama-config.ts)
 * from a local folder into the tfjs `llama` model, as transformers' `save_pretrained` writes it:
 * `config.json` plus `model.safetensors` (or shards listed in `model.safetensors.index.json`),
 * F32, F16 or BF16. Every tensor name, shape and dtype is checked against the config from the
 * headers alone, before any data is read; then tensors are read one at a time (a positioned read
 * of its bytes, widened to float32, copied into tfjs, dropped), so a 135M or 1.1B checkpoint is
 * never in memory twice.
 *
 * The base model's identity is the SHA-256 of its weights file (docs/llama.md, "Loading a checkpoint folder"), streamed; for a
 * sharded folder, of the shards' bytes concatenated in file-name order (see checkpointSha256).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FedloraError } from '../shared/errors.js';
import { SafetensorsFile } from '../shared/safetensors/index.js';
import type { SafetensorsTensorInfo } from '../shared/safetensors/index.js';
import { parseLlamaConfig, type LlamaConfig } from './models/llama-config.js';
import { LM_HEAD, llamaTensorShapes } from './models/llama-names.js';
import type { LlamaBuildOptions, LlamaModel } from './models/llama.js';

export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const WEIGHTS_INDEX_FILE = 'model.safetensors.index.json';
const READABLE = new Set(['F32', 'F16', 'BF16']);

function checkpointError(message: string, details: Record<string, unknown>): FedloraError {
  return new FedloraError('FL_ERR_CHECKPOINT', message, details);
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

async function readJsonFile(path: string, code: 'FL_ERR_MODEL_CONFIG' | 'FL_ERR_CHECKPOINT'): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : `cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`;
    throw new FedloraError(code, `${path}: ${why}`, { file: path }, { cause: e });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new FedloraError(code, `${path}: not valid JSON (${(e as Error).message})`, { file: path }, { cause: e });
  }
}

/** Reads and validates `config.json` of a model folder. @throws FL_ERR_MODEL_CONFIG */
export async function readLlamaConfig(dir: string): Promise<LlamaConfig> {
  const path = join(dir, CONFIG_FILE);
  return parseLlamaConfig(await readJsonFile(path, 'FL_ERR_MODEL_CONFIG'), path);
}

/**
 * The weight files of a folder: `model.safetensors`, or the shards `model.safetensors.index.json`
 * names (sorted, each once).
 * @throws FL_ERR_CHECKPOINT when there is neither, or the index is malformed
 */
export async function weightFiles(dir: string): Promise<{ files: string[]; shardOf?: ReadonlyMap<string, string> }> {
  const single = join(dir, WEIGHTS_FILE);
  if (await exists(single)) return { files: [single] };
  const indexPath = join(dir, WEIGHTS_INDEX_FILE);
  if (!(await exists(indexPath))) {
    throw checkpointError(`${dir}: no ${WEIGHTS_FILE} and no ${WEIGHTS_INDEX_FILE}`, { dir });
  }
  const index = (await readJsonFile(indexPath, 'FL_ERR_CHECKPOINT')) as { weight_map?: unknown };
  const map = index?.weight_map;
  if (map === null || typeof map !== 'object' || Array.isArray(map)) {
    throw checkpointError(`${indexPath}: 'weight_map' must be an object of tensor name -> shard file`, { file: indexPath });
  }
  const shardOf = new Map<string, string>();
  for (const [name, file] of Object.entries(map as Record<string, unknown>)) {
    if (typeof file !== 'string' || file.includes('/') || file.includes('\\') || file.startsWith('.')) {
      throw checkpointError(`${indexPath}: tensor '${name}' maps to ${JSON.stringify(file)}, not a file name in the folder`, { file: indexPath, tensor: name });
    }
    shardOf.set(name, join(dir, file));
  }
  return { files: [...new Set(shardOf.values())].sort(), shardOf };
}

/** SHA-256 (hex) of one file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 22 })) hash.update(chunk as Buffer);
  } catch (e) {
    throw new FedloraError('FL_ERR_IO', `${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { path }, { cause: e });
  }
  return hash.digest('hex');
}

/**
 * The base model identity of a folder: SHA-256 of `model.safetensors`; for a sharded checkpoint,
 * of the shard files' bytes concatenated in file-name order (one stream over all of them;
 * transformers names them `model-00001-of-0000N.safetensors`, so that is shard order). The index
 * file is not hashed: its weight_map is checked against the shards' own headers on load, so two
 * folders with the same shards load the same weights whatever the index's formatting or metadata.
 */
export async function checkpointSha256(dir: string): Promise<string> {
  const { files } = await weightFiles(dir);
  if (files.length === 1) return sha256File(files[0]!);
  const hash = createHash('sha256');
  for (const f of files) {
    try {
      for await (const chunk of createReadStream(f, { highWaterMark: 1 << 22 })) hash.update(chunk as Buffer);
    } catch (e) {
      throw new FedloraError('FL_ERR_IO', `${f}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { path: f }, { cause: e });
    }
  }
  return hash.digest('hex');
}

/** True for tensors some checkpoints carry that the model recomputes (old conversions saved rope's inv_freq buffer). */
function isIgnorableExtra(name: string, config: LlamaConfig, info: SafetensorsTensorInfo): boolean {
  if (/^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/.test(name)) return true;
  // Some exports of tied models also save lm_head; transformers ties it to the embedding anyway.
  return name === LM_HEAD && config.tieWordEmbeddings && sameShape(info.shape, [config.vocabSize, config.hiddenSize]);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** An opened checkpoint: its config, its files with checked headers, and a reader by tensor name. */
export class LlamaCheckpoint {
  private constructor(
    readonly dir: string,
    readonly config: LlamaConfig,
    private readonly files: SafetensorsFile[],
    private readonly fileOf: ReadonlyMap<string, SafetensorsFile>,
  ) {}

  /**
   * Opens a folder and checks, from the headers only, that it holds exactly the tensors the
   * config needs, with their shapes and a readable dtype.
   * @throws FL_ERR_MODEL_CONFIG for config.json, FL_ERR_CHECKPOINT naming the tensor (and both
   *   shapes) for the weights, FL_ERR_SAFETENSORS_* for a malformed file
   */
  static async open(dir: string): Promise<LlamaCheckpoint> {
    const config = await readLlamaConfig(dir);
    const { files: paths, shardOf } = await weightFiles(dir);
    const files: SafetensorsFile[] = [];
    try {
      for (const p of paths) files.push(await SafetensorsFile.open(p));
      const fileOf = new Map<string, SafetensorsFile>();
      for (const f of files) {
        for (const info of f.header.tensors) {
          const other = fileOf.get(info.name);
          if (other !== undefined) {
            throw checkpointError(`tensor '${info.name}' is in both ${other.path} and ${f.path}`, { tensor: info.name });
          }
          if (shardOf !== undefined && shardOf.get(info.name) !== f.path) {
            throw checkpointError(`${f.path}: holds tensor '${info.name}', which ${WEIGHTS_INDEX_FILE} places in ${shardOf.get(info.name) ?? 'no shard'}`, { tensor: info.name });
          }
          fileOf.set(info.name, f);
        }
      }
      const expected = llamaTensorShapes(config);
      for (const [name, shape] of expected) {
        const f = fileOf.get(name);
        if (f === undefined) {
          throw checkpointError(`${dir}: missing tensor '${name}' [${shape.join(', ')}] that config.json implies`, { tensor: name, expected: shape });
        }
        const info = f.info(name);
        if (!sameShape(info.shape, shape)) {
          throw checkpointError(`${f.path}: tensor '${name}' has shape [${info.shape.join(', ')}], config.json implies [${shape.join(', ')}]`,
            { tensor: name, shape: info.shape, expected: shape });
        }
        if (!READABLE.has(info.dtype)) {
          throw checkpointError(`${f.path}: tensor '${name}' has dtype ${info.dtype}; fedlora loads F32, F16 and BF16`, { tensor: name, dtype: info.dtype });
        }
      }
      const extra = [...fileOf].filter(([name, f]) => !expected.has(name) && !isIgnorableExtra(name, config, f.info(name)));
      if (extra.length > 0) {
        const [name, f] = extra[0]!;
        throw checkpointError(`${f.path}: unexpected tensor '${name}' [${f.info(name).shape.join(', ')}]${extra.length > 1 ? ` (and ${extra.length - 1} more)` : ''}; not part of a Llama model of this config.json`,
          { tensor: name, extra: extra.map(([n]) => n) });
      }
      return new LlamaCheckpoint(dir, config, files, fileOf);
    } catch (e) {
      await Promise.all(files.map((f) => f.close()));
      throw e;
    }
  }

  /** The stored dtype of a tensor (F32, F16 or BF16). */
  dtype(name: string): string {
    return this.fileOf.get(name)!.info(name).dtype;
  }

  /** Reads one tensor as float32 (F16/BF16 widened). */
  async read(name: string): Promise<Float32Array> {
    const f = this.fileOf.get(name);
    if (f === undefined) throw checkpointError(`${this.dir}: no tensor '${name}'`, { tensor: name });
    return (await f.read(name)).data;
  }

  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => f.close()));
  }
}

/**
 * Loads a checkpoint folder into a tfjs `llama` model, one tensor at a time.
 * @param options.trainable see LlamaBuildOptions
 * @param options.hash compute the SHA-256 identity too @default true
 */
export async function loadLlamaCheckpoint(dir: string, options: LlamaBuildOptions & { hash?: boolean } = {}): Promise<{ model: LlamaModel; config: LlamaConfig; sha256?: string }> {
  const checkpoint = await LlamaCheckpoint.open(dir);
  const { LlamaModel } = await import('./models/llama.js');
  let model: LlamaModel;
  try {
    model = await LlamaModel.build(checkpoint.config, (name) => checkpoint.read(name), options);
  } finally {
    await checkpoint.close();
  }
  if (options.hash === false) return { model, config: checkpoint.config };
  try {
    return { model, config: checkpoint.config, sha256: await checkpointSha256(dir) };
  } catch (e) {
    model.dispose();
    throw e;
  }
}
