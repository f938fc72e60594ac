/**
 * Saving a `llama` model as a Hugging Face checkpoint folder: `config.json` (LlamaForCausalLM),
 * `model.safetensors` (F32, HF tensor names, linear weights [out, in]) and optionally the
 * tokenizer files, so `AutoModelForCausalLM.from_pretrained(dir)` and our own loader read it.
 * Tensors are streamed to the file one at a time.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SafetensorsFileWriter } from '../shared/safetensors/index.js';
import { CONFIG_FILE, WEIGHTS_FILE, sha256File } from './checkpoint.js';
import { llamaConfigToJson } from './models/llama-config.js';
import { llamaTensorShapes } from './models/llama-names.js';
import type { LlamaModel } from './models/llama.js';

export interface SaveLlamaOptions {
  /** tokenizer.json and tokenizer_config.json objects to write beside the weights. */
  tokenizer?: { tokenizer: Record<string, unknown>; config: Record<string, unknown> };
  /** Extra `__metadata__` entries of model.safetensors (strings); `format: pt` is always set. */
  metadata?: Record<string, string>;
}

/**
 * Writes the model to `dir` (created if needed).
 * @returns the SHA-256 of the written model.safetensors: the base model identity
 */
export async function saveLlamaCheckpoint(model: LlamaModel, dir: string, options: SaveLlamaOptions = {}): Promise<string> {
  await mkdir(dir, { recursive: true });
  const shapes = llamaTensorShapes(model.config);
  const specs = [...shapes].map(([name, shape]) => ({ name, shape }));
  // transformers refuses safetensors whose metadata format is not a framework it knows.
  const writer = await SafetensorsFileWriter.open(join(dir, WEIGHTS_FILE), specs, { ...options.metadata, format: 'pt' });
  try {
    await model.forEachWeight(async (name, t) => {
      await writer.write(name, (await t.data()) as Float32Array);
    });
  } catch (e) {
    await writer.abort();
    throw e;
  }
  await writer.close();
  await writeFile(join(dir, CONFIG_FILE), `${JSON.stringify(llamaConfigToJson(model.config), null, 2)}\n`);
  if (options.tokenizer) {
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(options.tokenizer.tokenizer));
    await writeFile(join(dir, 'tokenizer_config.json'), `${JSON.stringify(options.tokenizer.config, null, 2)}\n`);
  }
  return sha256File(join(dir, WEIGHTS_FILE));
}
