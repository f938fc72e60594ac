/**
 * A llama checkpoint folder of a given config for timing benchmarks: config.json and a streamed
 * model.safetensors (one tensor in memory at a time) of cheap deterministic values of N(0, 0.02)-like
 * scale; the values do not matter for timing. The caller removes the folder.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { llamaConfigToJson, type LlamaConfig } from '../client/models/llama-config.js';
import { llamaTensorShapes } from '../client/models/llama-names.js';
import { SafetensorsFileWriter } from '../shared/safetensors/index.js';

export async function writeTimingCheckpoint(config: LlamaConfig, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await writeFile(join(dir, 'config.json'), JSON.stringify(llamaConfigToJson(config)));
  const shapes = [...llamaTensorShapes(config)].map(([name, shape]) => ({ name, shape }));
  const writer = await SafetensorsFileWriter.open(join(dir, 'model.safetensors'), shapes, { format: 'pt' });
  let k = 0;
  for (const { name, shape } of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    if (shape.length === 1) v.fill(1);
    else for (let i = 0; i < n; i++) v[i] = 0.035 * Math.sin(i * 0.7071 + k);
    k++;
    await writer.write(name, v);
  }
  await writer.close();
  return dir;
}
