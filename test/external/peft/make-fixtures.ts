/**
 * Writes PEFT adapter directories with fedlora's writer for a tiny Llama (hidden 32, 2 layers,
 * 4 heads, 2 kv heads), plus the expected weight deltas s * B @ A computed independently in
 * float64. check_peft.py loads each directory with Hugging Face PEFT, merges it, and compares.
 * Not part of `npm test` (PEFT and torch are not on the dev machines):
 *   npx tsx test/external/peft/make-fixtures.ts OUT_DIR  &&  python3 test/external/peft/check_peft.py OUT_DIR
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Adapter, AdapterModule, AdapterVariant, ModuleFactors } from '../../../shared/adapter.js';
import { writePeftAdapterDir } from '../../../shared/peft.js';

const out = process.argv[2] ?? 'peft-fixtures';
let state = 12345;
const rand = (): number => {
  state = (Math.imul(state, 1103515245) + 12345) >>> 0;
  return state / 2 ** 32 - 0.5;
};
const randArray = (n: number): Float32Array => Float32Array.from({ length: n }, rand);

/** [m, n] delta = s * B (R) A in float64, row-major. */
function delta(m: AdapterModule, f: ModuleFactors): number[] {
  const { outFeatures: rows, inFeatures: cols, rank: r } = m;
  const s = m.alpha / r;
  const B = Array.from({ length: rows * r }, (_, i) => f.B![i]!);
  let BR = B;
  if (f.R) {
    BR = new Array(rows * r).fill(0);
    for (let i = 0; i < rows; i++) for (let k = 0; k < r; k++) for (let j = 0; j < r; j++) BR[i * r + j]! += B[i * r + k]! * f.R[k * r + j]!;
  }
  const d = new Array(rows * cols).fill(0);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) {
    let acc = 0;
    for (let k = 0; k < r; k++) acc += BR[i * r + k]! * f.A![k * cols + j]!;
    d[i * cols + j] = s * acc;
  }
  return d;
}

const cases: Array<{ name: string; variant: AdapterVariant; ranks: number[]; alphas: number[] }> = [
  { name: 'lora-uniform', variant: 'lora', ranks: [4, 4, 4, 4], alphas: [8, 8, 8, 8] },
  { name: 'lora-heterogeneous', variant: 'lora', ranks: [4, 2, 8, 3], alphas: [8, 4, 16, 5] },
  { name: 'ffa', variant: 'ffa', ranks: [4, 4, 4, 4], alphas: [16, 16, 16, 16] },
  { name: 'fedsb-folded', variant: 'fedsb', ranks: [3, 3, 3, 3], alphas: [3, 3, 3, 3] },
];
const paths = ['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj'];
const shapes: Record<string, [number, number]> = { q_proj: [32, 32], v_proj: [16, 32] };

const manifest: Record<string, Record<string, { shape: [number, number]; delta: number[] }>> = {};
for (const c of cases) {
  const modules: AdapterModule[] = paths.map((path, i) => {
    const [m, n] = shapes[path.split('.').pop()!]!;
    return { path, outFeatures: m, inFeatures: n, rank: c.ranks[i]!, alpha: c.alphas[i]! };
  });
  const factors = new Map<string, ModuleFactors>();
  for (const m of modules) {
    const f: ModuleFactors = { A: randArray(m.rank * m.inFeatures), B: randArray(m.outFeatures * m.rank), ...(c.variant === 'fedsb' && { R: randArray(m.rank * m.rank) }) };
    factors.set(m.path, f);
  }
  const adapter: Adapter = { layout: { variant: c.variant, modules, baseModelName: 'tiny-llama-random' }, factors };
  const dir = join(out, c.name);
  mkdirSync(dir, { recursive: true });
  await writePeftAdapterDir(dir, adapter);
  manifest[c.name] = Object.fromEntries(modules.map((m) => [m.path, { shape: [m.outFeatures, m.inFeatures], delta: delta(m, factors.get(m.path)!) }]));
}
writeFileSync(join(out, 'expected.json'), JSON.stringify(manifest));
console.log(`wrote ${cases.length} adapters and expected.json under ${out}`);
