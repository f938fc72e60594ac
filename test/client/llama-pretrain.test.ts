import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { loadLlamaCheckpoint } from '../../client/checkpoint.js';
import { pretrainLlama, type PretrainLlamaOptions } from '../../client/pretrain/llama.js';
import { loadTokenizer } from '../../client/tokenizer.js';
import { isFedloraError } from '../../shared/errors.js';

let dir: string;
let data: string;
const tiny = { hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64 };

beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = await mkdtemp(join(tmpdir(), 'fedlora-pretrain-'));
  data = join(dir, 'lines.txt');
  const lines = Array.from({ length: 200 }, (_, i) => `a small ${['cat', 'dog', 'bird', 'fish'][i % 4]} sat on ${['the', 'a'][i % 2]} mat ${i % 7}`);
  await writeFile(data, `${lines.join('\n')}\n`);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function run(out: string, seed: number, steps: number, extra: Partial<PretrainLlamaOptions> = {}): ReturnType<typeof pretrainLlama> {
  return pretrainLlama({ out: join(dir, out), steps, seed, data, configOverrides: tiny, batchSize: 4, seqLen: 24, validationWindows: 8, lr: 1e-2, ...extra });
}

describe('pre-training the small llama', () => {
  it('is reproducible from its seed, and another seed gives other weights', async () => {
    await tf.setBackend('cpu');
    const a = await run('a', 3, 2);
    const b = await run('b', 3, 2);
    const c = await run('c', 4, 2);
    expect(b.sha256).toBe(a.sha256);
    expect(b.losses.map((l) => l.loss)).toEqual(a.losses.map((l) => l.loss));
    expect(c.sha256).not.toBe(a.sha256);
    expect(a.sha256).toMatch(/^[0-9a-f]{64}$/);
    // Seed 0 too: tfjs takes a seed of 0 as "no seed" (Math.random), which the initialisation must avoid.
    expect((await run('z1', 0, 1)).sha256).toBe((await run('z2', 0, 1)).sha256);
  });

  it('is reproducible on wasm too (single-threaded XNNPACK kernels)', async () => {
    expect(await tf.setBackend('wasm')).toBe(true);
    const a = await run('w1', 5, 2);
    const b = await run('w2', 5, 2);
    expect(b.sha256).toBe(a.sha256);
    expect(a.backend).toBe('wasm');
    await tf.setBackend('cpu');
  });

  it('lowers the validation loss and writes a Hugging Face folder our loaders read back', async () => {
    const r = await run('d', 1, 24, { evalEvery: 12 });
    expect(r.evals.map((e) => e.step)).toEqual([0, 12, 24]);
    // From ~ln(259) = 5.56 nats at random init to well below on this repetitive text.
    expect(r.evals[0]!.loss).toBeGreaterThan(5);
    expect(r.evals[2]!.loss).toBeLessThan(r.evals[0]!.loss - 1.5);
    const out = join(dir, 'd');
    const { model, sha256 } = await loadLlamaCheckpoint(out);
    expect(sha256).toBe(r.sha256);
    expect(model.config).toMatchObject({ vocabSize: 259, tieWordEmbeddings: true, bosTokenId: 256, eosTokenId: 257, padTokenId: 258 });
    model.dispose();
    const tok = await loadTokenizer(out);
    expect(tok.encode('mat')).toEqual([109, 97, 116]);
    const record = JSON.parse(await readFile(join(out, 'pretrain.json'), 'utf8')) as { sha256: string; losses: unknown[]; seed: number };
    expect(record).toMatchObject({ sha256: r.sha256, seed: 1 });
    expect(record.losses).toHaveLength(24);
  });

  it('refuses a sequence longer than the positions, and too little data', async () => {
    await expect(run('e', 0, 1, { seqLen: 64 })).rejects.toSatisfy((e) => isFedloraError(e, 'FL_ERR_INVALID_ARGUMENT'));
    const small = join(dir, 'small.txt');
    await writeFile(small, 'one line\n');
    await expect(run('f', 0, 1, { data: small })).rejects.toSatisfy((e) => isFedloraError(e, 'FL_ERR_DATA'));
  });
});
