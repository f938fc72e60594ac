import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { checkpointSha256, loadLlamaCheckpoint } from '../../client/checkpoint.js';
import { saveLlamaCheckpoint } from '../../client/checkpoint-save.js';
import { parseLlamaConfig } from '../../client/models/llama-config.js';
import { randomLlamaWeights } from '../../client/models/llama-init.js';
import { llamaTensorShapes } from '../../client/models/llama-names.js';
import { LlamaModel } from '../../client/models/llama.js';
import { isFedloraError, type ErrorCode } from '../../shared/errors.js';
import { roundForHalf, tinyConfigJson, writeCheckpoint, type FixtureTensor, type WriteCheckpointOptions } from './llama-fixtures.js';

const config = parseLlamaConfig(tinyConfigJson);
const shapes = llamaTensorShapes(config);
const IDS = [[1, 5, 9, 2, 36, 0, 7, 7]];

let root: string;
let n = 0;
beforeAll(async () => {
  await tf.setBackend('cpu');
  root = await mkdtemp(join(tmpdir(), 'fedlora-checkpoint-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function folder(weights: Map<string, Float32Array>, options: WriteCheckpointOptions = {}, configJson: object = tinyConfigJson): Promise<string> {
  const dir = join(root, `ckpt-${n++}`);
  await writeCheckpoint(dir, configJson, weights, shapes, options);
  return dir;
}

async function logitsOf(model: LlamaModel): Promise<Float32Array> {
  const out = tf.tidy(() => model.logits(tf.tensor2d(IDS, [1, 8], 'int32')));
  const v = (await out.data()) as Float32Array;
  out.dispose();
  return v;
}

async function directLogits(weights: Map<string, Float32Array>): Promise<Float32Array> {
  const model = await LlamaModel.build(config, (name) => weights.get(name)!);
  try {
    return await logitsOf(model);
  } finally {
    model.dispose();
  }
}

async function expectRefusal(dir: string, code: ErrorCode, pattern: RegExp): Promise<void> {
  await expect(loadLlamaCheckpoint(dir)).rejects.toSatisfy((e) => {
    if (!isFedloraError(e, code)) throw e;
    if (!pattern.test(e.message)) throw new Error(`message '${e.message}' does not match ${pattern}`);
    return true;
  });
}

describe('loading a Llama checkpoint folder', () => {
  const weights = randomLlamaWeights(config, 21, { std: 0.3, normJitter: 0.5 });

  it('loads F32 into the same model as the weights given directly, and hashes the file', async () => {
    const dir = await folder(weights);
    const { model, sha256 } = await loadLlamaCheckpoint(dir);
    expect(await logitsOf(model)).toEqual(await directLogits(weights));
    model.dispose();
    const bytes = await readFile(join(dir, 'model.safetensors'));
    expect(sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
  });

  for (const dtype of ['F16', 'BF16'] as const) {
    it(`loads ${dtype} (widened exactly) and gives the logits of the same values in F32`, async () => {
      const rounded = new Map([...weights].map(([k, v]) => [k, roundForHalf(v)]));
      const dir = await folder(rounded, { dtype });
      const { model } = await loadLlamaCheckpoint(dir, { hash: false });
      // Every value is exact in both formats, so the tfjs inputs are bit-identical.
      expect(await logitsOf(model)).toEqual(await directLogits(rounded));
      model.dispose();
    });
  }

  it('loads a sharded checkpoint (model.safetensors.index.json); its identity covers every shard', async () => {
    const dir = await folder(weights, { shards: 3 });
    const { model, sha256 } = await loadLlamaCheckpoint(dir);
    expect(await logitsOf(model)).toEqual(await directLogits(weights));
    model.dispose();
    const hash = createHash('sha256');
    for (const s of [1, 2, 3]) hash.update(await readFile(join(dir, `model-0000${s}-of-00003.safetensors`)));
    expect(sha256).toBe(hash.digest('hex'));
    expect(await checkpointSha256(dir)).toBe(sha256);
  });

  it('saves a model in the Hugging Face layout that loads back to the same logits and identity', async () => {
    const model = await LlamaModel.build(config, (name) => weights.get(name)!, { trainable: true });
    const dir = join(root, 'saved');
    const sha = await saveLlamaCheckpoint(model, dir);
    const want = await logitsOf(model);
    model.dispose();
    const saved = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(saved).toMatchObject({ architectures: ['LlamaForCausalLM'], model_type: 'llama', num_key_value_heads: 2, head_dim: 4 });
    const loaded = await loadLlamaCheckpoint(dir);
    expect(loaded.sha256).toBe(sha);
    expect(await logitsOf(loaded.model)).toEqual(want);
    loaded.model.dispose();
  });

  it('ignores a duplicate lm_head.weight in a tied checkpoint, as transformers does', async () => {
    const tiedJson = { ...tinyConfigJson, tie_word_embeddings: true };
    const tied = parseLlamaConfig(tiedJson);
    const tiedWeights = randomLlamaWeights(tied, 23, { std: 0.3 });
    const dir = join(root, `ckpt-${n++}`);
    const extra = new Map<string, FixtureTensor>([['lm_head.weight', { shape: [37, 16], values: new Float32Array(37 * 16).fill(0.5) }]]);
    await writeCheckpoint(dir, tiedJson, tiedWeights, llamaTensorShapes(tied), { override: extra });
    const { model } = await loadLlamaCheckpoint(dir, { hash: false });
    const direct = await LlamaModel.build(tied, (name) => tiedWeights.get(name)!);
    expect(await logitsOf(model)).toEqual(await logitsOf(direct));
    model.dispose();
    direct.dispose();
  });

  it('ignores rotary_emb.inv_freq buffers that old conversions saved', async () => {
    const extra = new Map<string, FixtureTensor>([['model.layers.0.self_attn.rotary_emb.inv_freq', { shape: [2], values: new Float32Array([1, 0.1]) }]]);
    const { model } = await loadLlamaCheckpoint(await folder(weights, { override: extra }), { hash: false });
    model.dispose();
  });
});

describe('refusing a bad checkpoint with a coded error naming the tensor', () => {
  const weights = randomLlamaWeights(config, 22);
  const q = 'model.layers.1.self_attn.q_proj.weight';

  it('a missing tensor, with its expected shape', async () => {
    await expectRefusal(await folder(weights, { override: new Map([[q, null]]) }), 'FL_ERR_CHECKPOINT', /missing tensor 'model\.layers\.1\.self_attn\.q_proj\.weight' \[16, 16\]/);
  });

  it('a mis-shaped tensor, with both shapes', async () => {
    const bad = new Map<string, FixtureTensor>([[q, { shape: [16, 15], values: new Float32Array(240) }]]);
    await expectRefusal(await folder(weights, { override: bad }), 'FL_ERR_CHECKPOINT', /'model\.layers\.1\.self_attn\.q_proj\.weight' has shape \[16, 15\], config\.json implies \[16, 16\]/);
  });

  it('an extra tensor', async () => {
    const bad = new Map<string, FixtureTensor>([['model.layers.2.mlp.up_proj.weight', { shape: [24, 16], values: new Float32Array(384) }]]);
    await expectRefusal(await folder(weights, { override: bad }), 'FL_ERR_CHECKPOINT', /unexpected tensor 'model\.layers\.2\.mlp\.up_proj\.weight' \[24, 16\]/);
  });

  it('lm_head.weight when config.json says the embeddings are untied but it is absent', async () => {
    await expectRefusal(await folder(weights, { override: new Map([['lm_head.weight', null]]) }), 'FL_ERR_CHECKPOINT', /missing tensor 'lm_head\.weight'/);
  });

  it('a dtype fedlora does not load (I64)', async () => {
    const bad = new Map<string, FixtureTensor>([['model.norm.weight', { shape: [16], raw: { dtype: 'I64', bytes: new Uint8Array(128) } }]]);
    await expectRefusal(await folder(weights, { override: bad }), 'FL_ERR_CHECKPOINT', /'model\.norm\.weight' has dtype I64/);
  });

  it('a folder without weights, or without config.json', async () => {
    const dir = join(root, 'config-only');
    await writeCheckpoint(dir, tinyConfigJson, new Map(), shapes);
    await rm(join(dir, 'model.safetensors'));
    await expectRefusal(dir, 'FL_ERR_CHECKPOINT', /no model\.safetensors and no model\.safetensors\.index\.json/);
    await expectRefusal(join(root, 'nowhere'), 'FL_ERR_MODEL_CONFIG', /config\.json: missing/);
  });

  it('a config.json with an option the model does not implement, naming the key', async () => {
    const dir = await folder(weights, {}, { ...tinyConfigJson, rope_scaling: { rope_type: 'yarn', factor: 8 } });
    await expectRefusal(dir, 'FL_ERR_MODEL_CONFIG', /'rope_scaling' has rope type 'yarn'/);
  });

  it('a sharded checkpoint whose index disagrees with its shards, or names a path outside the folder', async () => {
    const dir = await folder(weights, { shards: 2 });
    const indexPath = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(await readFile(indexPath, 'utf8')) as { weight_map: Record<string, string> };
    const moved = { ...index.weight_map, [q]: index.weight_map[q] === 'model-00001-of-00002.safetensors' ? 'model-00002-of-00002.safetensors' : 'model-00001-of-00002.safetensors' };
    await writeFile(indexPath, JSON.stringify({ weight_map: moved }));
    await expectRefusal(dir, 'FL_ERR_CHECKPOINT', /holds tensor 'model\.layers\.1\.self_attn\.q_proj\.weight', which model\.safetensors\.index\.json places in/);
    await writeFile(indexPath, JSON.stringify({ weight_map: { ...index.weight_map, [q]: '../elsewhere.safetensors' } }));
    await expectRefusal(dir, 'FL_ERR_CHECKPOINT', /maps to "\.\.\/elsewhere\.safetensors", not a file name in the folder/);
    await writeFile(indexPath, '{"weight_map": [');
    await expectRefusal(dir, 'FL_ERR_CHECKPOINT', /index\.json: not valid JSON/);
  });

  it('a truncated weights file, through the safetensors reader', async () => {
    const dir = await folder(weights);
    const bytes = await readFile(join(dir, 'model.safetensors'));
    await writeFile(join(dir, 'model.safetensors'), bytes.subarray(0, bytes.length - 10));
    await expect(loadLlamaCheckpoint(dir)).rejects.toSatisfy((e) => isFedloraError(e) && e.code.startsWith('FL_ERR_SAFETENSORS'));
  });
});
