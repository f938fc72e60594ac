/**
 * Writes the adapter directories that check_peft.py loads with real PEFT (see README.md here).
 * Usage: npx tsx test/shared/peft-check/make-dirs.ts OUT_DIR
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { writePeftAdapterDir } from '../../../shared/peft.js';
import { writeSafetensorsFile } from '../../../shared/safetensors/index.js';
import { makeTensor } from '../../../shared/tensor.js';
import type { AdapterModule } from '../../../shared/adapter.js';
import { randomAdapter } from '../fixtures.js';

const here = process.argv[2];
if (here === undefined) throw new Error('usage: make-dirs.ts OUT_DIR');
const H = 16, KV = 8;
const modules: AdapterModule[] = [
  { path: 'model.layers.0.self_attn.q_proj', outFeatures: H, inFeatures: H, rank: 4, alpha: 8 },
  { path: 'model.layers.0.self_attn.v_proj', outFeatures: KV, inFeatures: H, rank: 4, alpha: 8 },
  { path: 'model.layers.1.self_attn.q_proj', outFeatures: H, inFeatures: H, rank: 2, alpha: 8 },
  { path: 'model.layers.1.self_attn.v_proj', outFeatures: KV, inFeatures: H, rank: 4, alpha: 3 },
  { path: 'model.layers.1.self_attn.k_proj', outFeatures: KV, inFeatures: H, rank: 4, alpha: 8 },
];
const sha = 'cd'.repeat(32);
await writePeftAdapterDir(`${here}/lora`, randomAdapter('lora', modules, 1, { baseModelSha256: sha }), { baseModelName: 'tiny-llama-random' });
await writePeftAdapterDir(`${here}/lora-nokey`, randomAdapter('lora', modules, 1, { baseModelSha256: sha }), { fedloraConfigKey: false });
const fedsb = randomAdapter('fedsb', modules.map((m) => ({ ...m, rank: 3, alpha: 3 })), 2, { baseModelSha256: sha });
await writePeftAdapterDir(`${here}/fedsb-folded`, fedsb);
await writePeftAdapterDir(`${here}/fedsb-unfolded`, fedsb, { foldFedSb: false });
await writePeftAdapterDir(`${here}/fedsb-folded-with-r`, fedsb, { includeFedSbR: true });
// Paths that end one another (a.b, x.a.b) and integer-like paths ("0", which a JS object would
// move to the front of rank_pattern): every module of the torch model in check_peft.py is adapted.
const nested: AdapterModule[] = [
  { path: 'a.b', outFeatures: 3, inFeatures: 3, rank: 1, alpha: 2 },
  { path: 'x.a.b', outFeatures: 3, inFeatures: 3, rank: 2, alpha: 2 },
  { path: 'y.c', outFeatures: 3, inFeatures: 3, rank: 2, alpha: 2 },
  { path: '0', outFeatures: 3, inFeatures: 3, rank: 1, alpha: 16 },
  { path: 'a.0', outFeatures: 3, inFeatures: 3, rank: 2, alpha: 2 },
  { path: 'x.a.0', outFeatures: 3, inFeatures: 3, rank: 1, alpha: 2 },
];
await writePeftAdapterDir(`${here}/nested`, randomAdapter('lora', nested, 3), { taskType: null, fedloraConfigKey: false });
writeFileSync(`${here}/expected.json`, JSON.stringify({
  lora: Object.fromEntries(modules.map((m) => [m.path, { rank: m.rank, alpha: m.alpha }])),
  fedsb: Object.fromEntries(fedsb.layout.modules.map((m) => [m.path, { rank: m.rank, alpha: m.alpha }])),
  nested: Object.fromEntries(nested.map((m) => [m.path, { rank: m.rank, alpha: m.alpha }])),
}));
// Layout comparison: tricky names, one metadata key (the reference orders several keys by a hash map).
const names = ['b', '10', '2', 'a.weight', 'B', 'é', '\u{1F600}', '\uFF5E', 'z'];
mkdirSync(`${here}/layout`, { recursive: true });
await writeSafetensorsFile(`${here}/layout/ours.safetensors`,
  names.map((n, i) => makeTensor(n, i % 3 === 0 ? [i + 1] : i % 3 === 1 ? [2, i] : [], new Float32Array(i % 3 === 0 ? i + 1 : i % 3 === 1 ? 2 * i : 1).map((_, j) => i * 10 + j + 0.5))),
  { format: 'pt' });
console.log(`adapter directories written to ${here}`);
