/** `fedlora pretrain llama --hidden --layers --heads --kv-heads`: the size options reach config.json and the parameter count. */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { llamaSizeOverrides } from '../../client/pretrain/llama.js';

describe('pre-training size options', () => {
  it('derive the SwiGLU width as 8/3 x hidden rounded up to a multiple of 8 (688 for 256, the default config)', () => {
    expect(llamaSizeOverrides({ hidden: 256 })).toEqual({ hidden_size: 256, intermediate_size: 688 });
    expect(llamaSizeOverrides({ hidden: 128, layers: 2, heads: 4, kvHeads: 2 })).toEqual({ hidden_size: 128, intermediate_size: 344, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2 });
    expect(llamaSizeOverrides({ hidden: 16, intermediate: 20 })).toEqual({ hidden_size: 16, intermediate_size: 20 });
    expect(llamaSizeOverrides({})).toEqual({});
  });

  it('go from the CLI to config.json, with the parameter count computed by hand', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedlora-pretrain-size-'));
    try {
      const data = join(dir, 'lines.txt');
      await writeFile(data, `${Array.from({ length: 100 }, (_, i) => `line ${i} of a tiny corpus`).join('\n')}\n`);
      const out = join(dir, 'model');
      const args = ['--import', 'tsx', 'bin/fedlora.mjs', 'pretrain', 'llama', '--steps', '1', '--data', data, '--hidden', '16', '--layers', '1', '--heads', '2', '--kv-heads', '1', '--seq-len', '16', '--batch-size', '2', '--backend', 'cpu', '--out', out];
      const { stdout } = await promisify(execFile)(process.execPath, args, { maxBuffer: 1 << 24 });
      const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8')) as Record<string, number>;
      expect([config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads]).toEqual([16, 48, 1, 2, 1]);
      // tied embeddings 259 x 16; per layer q 16x16, k and v 8x16 (head_dim 8, one kv head), o 16x16, gate/up/down 3 x 48x16, two norms; final norm
      const byHand = 259 * 16 + (256 + 128 + 128 + 256 + 3 * 48 * 16 + 2 * 16) + 16;
      expect((JSON.parse(stdout) as { parameters: number }).parameters).toBe(byHand);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
