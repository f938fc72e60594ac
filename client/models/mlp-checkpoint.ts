/**
 * Reading and writing an `mlp` checkpoint folder: config.json + model.safetensors. The base
 * model's identity is the SHA-256 of model.safetensors (docs/training.md).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FedloraError } from '../../shared/errors.js';
import { readSafetensorsFile, writeSafetensorsFile } from '../../shared/safetensors/index.js';
import { makeTensor } from '../../shared/tensor.js';
import { mlpTensorShapes, parseMlpConfig, type MlpConfig } from './mlp-config.js';

export const MLP_CONFIG_FILE = 'config.json';
export const MLP_WEIGHTS_FILE = 'model.safetensors';

export interface MlpCheckpoint {
  readonly config: MlpConfig;
  /** Tensors by name, row-major float32 (see mlp-config.ts for names and shapes). */
  readonly weights: ReadonlyMap<string, Float32Array>;
  /** SHA-256 (hex) of model.safetensors. */
  readonly sha256: string;
}

/** SHA-256 (hex) of a file, streamed. */
export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  } catch (e) {
    throw new FedloraError('FL_ERR_IO', `cannot read ${path}: ${(e as Error).message}`, { file: path }, { cause: e });
  }
  return hash.digest('hex');
}

/**
 * Reads config.json and model.safetensors from a folder and checks every tensor against the config.
 * @throws FL_ERR_MODEL_CONFIG for a missing or invalid config; FL_ERR_CHECKPOINT for a missing,
 *   extra or misshapen tensor
 */
export async function readMlpCheckpoint(dir: string): Promise<MlpCheckpoint> {
  const configPath = join(dir, MLP_CONFIG_FILE);
  let raw: string;
  try {
    raw = await readFile(configPath, 'utf8');
  } catch (e) {
    throw new FedloraError('FL_ERR_MODEL_CONFIG', `cannot read ${configPath}: ${(e as Error).message}`, { file: configPath }, { cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (e) {
    throw new FedloraError('FL_ERR_MODEL_CONFIG', `${configPath}: not valid JSON: ${(e as Error).message}`, { file: configPath }, { cause: e });
  }
  const config = parseMlpConfig(json, configPath);
  const weightsPath = join(dir, MLP_WEIGHTS_FILE);
  const [decoded, sha256] = [await readSafetensorsFile(weightsPath), await sha256OfFile(weightsPath)];
  const expected = mlpTensorShapes(config);
  const weights = new Map<string, Float32Array>();
  for (const t of decoded.tensors) {
    const shape = expected.get(t.name);
    if (shape === undefined) throw new FedloraError('FL_ERR_CHECKPOINT', `${weightsPath}: tensor '${t.name}' is not part of an mlp with this config.json`, { file: weightsPath, tensor: t.name });
    if (shape.join(',') !== t.shape.join(',')) {
      throw new FedloraError('FL_ERR_CHECKPOINT', `${weightsPath}: tensor '${t.name}' is [${t.shape.join(', ')}], config.json needs [${shape.join(', ')}]`, { file: weightsPath, tensor: t.name });
    }
    weights.set(t.name, t.data);
  }
  for (const name of expected.keys()) {
    if (!weights.has(name)) throw new FedloraError('FL_ERR_CHECKPOINT', `${weightsPath}: tensor '${name}' is missing`, { file: weightsPath, tensor: name });
  }
  return { config, weights, sha256 };
}

/**
 * Writes config.json and model.safetensors into `dir` (created if needed).
 * @returns the SHA-256 of the written model.safetensors
 */
export async function writeMlpCheckpoint(dir: string, config: MlpConfig, weights: ReadonlyMap<string, Float32Array>): Promise<string> {
  const shapes = mlpTensorShapes(config);
  const tensors = [...shapes].map(([name, shape]) => {
    const data = weights.get(name);
    if (data === undefined) throw new FedloraError('FL_ERR_CHECKPOINT', `cannot save the mlp: tensor '${name}' is missing`, { tensor: name });
    return makeTensor(name, shape, data);
  });
  try {
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, MLP_CONFIG_FILE), JSON.stringify(config, null, 2) + '\n');
  } catch (e) {
    throw new FedloraError('FL_ERR_IO', `cannot write ${join(dir, MLP_CONFIG_FILE)}: ${(e as Error).message}`, { file: dir }, { cause: e });
  }
  const weightsPath = join(dir, MLP_WEIGHTS_FILE);
  await writeSafetensorsFile(weightsPath, tensors, { format: 'pt' });
  return sha256OfFile(weightsPath);
}
