/**
 * The decoder families against transformers (issue 10, item 3): loads every checkpoint folder
 * under --dir with fedlora's loader on the backend --backend names, computes the logits of the
 * folder's reference token ids (read asynchronously: `await t.data()`, no synchronous read), and
 * compares them with the reference logits beside it. Prints a table and writes JSON.
 *
 *   python3 tools/gpu/make_checkpoints.py --out OUT --variants 2layer       # transformers' folders (GPU machine)
 *   npx tsx tools/gpu/check-families.ts --dir OUT --backend webgpu --json OUT/families.json
 *
 *   npx tsx tools/gpu/write-own-checkpoints.ts --out OWN                    # here: our writer, float64 reference
 *   npx tsx tools/gpu/check-families.ts --dir OWN --backend wasm --json OWN/families.json
 *
 * A folder is one that holds reference.json (input_ids, family) and reference.safetensors
 * (`logits` F32 [1, T, vocab]) beside config.json and the weights. The error is
 * max |ours - reference| / max |reference| over all logits; a row passes below --tolerance
 * (1e-4, the issue's bound). Exit code 1 when any row fails.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { Command } from 'commander';
import * as tf from '@tensorflow/tfjs';
import { chooseBackend, parseBackendName, shutdownBackend } from '../../client/backend.js';
import { loadLlamaCheckpoint, weightFiles } from '../../client/checkpoint.js';
import { llamaParameterCount } from '../../client/models/llama-config.js';
import { SafetensorsFile } from '../../shared/safetensors/index.js';

const opts = new Command()
  .requiredOption('--dir <dir>', 'a folder of checkpoint folders (each with reference.json and reference.safetensors)')
  .requiredOption('--backend <name>', 'tensorflow, webgpu, wasm or cpu (forced, no fallback)')
  .option('--json <file>', 'where to write the results as JSON')
  .option('--tolerance <x>', 'largest passing max |ours - ref| / max |ref|', '1e-4')
  .option('--only <list>', 'comma-separated folder names to check')
  .parse()
  .opts<{ dir: string; backend: string; json?: string; tolerance: string; only?: string }>();

interface Row {
  folder: string;
  family: string;
  modelType: string;
  shape: string;
  parameters: number;
  dtype: string;
  weightFiles: number;
  tokens: number;
  loadSeconds: number;
  forwardSeconds: number;
  maxAbsError: number;
  maxAbsLogit: number;
  maxRelError: number;
  pass: boolean;
  error?: string;
}

const tolerance = Number(opts.tolerance);
const root = resolve(opts.dir);
const backend = await chooseBackend({ backend: parseBackendName(opts.backend), log: (l) => process.stdout.write(`${l}\n`) });
const only = opts.only === undefined ? undefined : new Set(opts.only.split(','));
const folders = (await readdir(root, { withFileTypes: true }))
  .filter((e) => e.isDirectory() && existsSync(join(root, e.name, 'reference.json')) && (only === undefined || only.has(e.name)))
  .map((e) => join(root, e.name))
  .sort();
if (folders.length === 0) throw new Error(`${root}: no folder with reference.json`);

async function check(dir: string): Promise<Row> {
  const meta = JSON.parse(await readFile(join(dir, 'reference.json'), 'utf8')) as { family: string; input_ids: number[]; dtype?: string };
  const ids = meta.input_ids;
  const row: Row = {
    folder: basename(dir), family: meta.family, modelType: '?', shape: '?', parameters: 0, dtype: meta.dtype ?? '?', weightFiles: 0,
    tokens: ids.length, loadSeconds: 0, forwardSeconds: 0, maxAbsError: NaN, maxAbsLogit: NaN, maxRelError: NaN, pass: false,
  };
  try {
    row.weightFiles = (await weightFiles(dir)).files.length;
    const t0 = performance.now();
    const { model, config } = await loadLlamaCheckpoint(dir, { hash: false });
    row.loadSeconds = (performance.now() - t0) / 1000;
    row.modelType = config.modelType;
    row.shape = `${config.numLayers} x ${config.hiddenSize}, ${config.numHeads}/${config.numKvHeads} heads of ${config.headDim}, mlp ${config.intermediateSize}, vocab ${config.vocabSize}`
      + `${config.tieWordEmbeddings ? ', tied' : ''}${config.qkvBias ? ', qkv bias' : ''}${config.oBias ? ', o bias' : ''}${config.mlpBias ? ', mlp bias' : ''}`
      + `${config.ropeScaling ? `, rope ${config.ropeScaling.type} x${config.ropeScaling.factor}` : ''}${config.slidingWindow !== undefined ? `, window ${config.slidingWindow}` : ''}`;
    row.parameters = llamaParameterCount(config);
    let ours: Float32Array;
    try {
      const t1 = performance.now();
      const input = tf.tensor2d([ids], [1, ids.length], 'int32');
      const logits = model.logits(input);
      ours = (await logits.data()) as Float32Array;
      tf.dispose([input, logits]);
      row.forwardSeconds = (performance.now() - t1) / 1000;
    } finally {
      model.dispose();
    }
    const ref = await SafetensorsFile.open(join(dir, 'reference.safetensors'));
    let want: Float32Array;
    try {
      want = (await ref.read('logits')).data;
    } finally {
      await ref.close();
    }
    if (want.length !== ours.length) throw new Error(`reference has ${want.length} logits, ours ${ours.length}`);
    let maxAbs = 0;
    let maxRef = 0;
    for (let i = 0; i < want.length; i++) {
      const d = Math.abs(ours[i]! - want[i]!);
      maxAbs = Number.isNaN(d) ? Infinity : Math.max(maxAbs, d);
      maxRef = Math.max(maxRef, Math.abs(want[i]!));
    }
    row.maxAbsError = maxAbs;
    row.maxAbsLogit = maxRef;
    row.maxRelError = maxAbs / maxRef;
    row.pass = row.maxRelError < tolerance;
  } catch (e) {
    row.error = e instanceof Error ? e.message.split('\n')[0]! : String(e);
  }
  return row;
}

const rows: Row[] = [];
process.stdout.write(`backend ${backend.name} on ${backend.device}; tolerance ${tolerance}\n`);
process.stdout.write('| folder | family | shape | parameters | dtype | files | load s | forward s | max abs err | max rel err | pass |\n');
process.stdout.write('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n');
for (const dir of folders) {
  const r = await check(dir);
  rows.push(r);
  process.stdout.write(`| ${r.folder} | ${r.modelType} | ${r.shape} | ${r.parameters.toLocaleString('en-US')} | ${r.dtype} | ${r.weightFiles} | ${r.loadSeconds.toFixed(1)} `
    + `| ${r.forwardSeconds.toFixed(2)} | ${r.maxAbsError.toExponential(2)} | ${r.maxRelError.toExponential(2)} | ${r.pass ? 'PASS' : `FAIL${r.error ? `: ${r.error}` : ''}`} |\n`);
}
const result = { backend, tolerance, dir: root, rows, allPass: rows.every((r) => r.pass), date: new Date().toISOString() };
if (opts.json !== undefined) await writeFile(resolve(opts.json), `${JSON.stringify(result, null, 1)}\n`);
await shutdownBackend();
process.exitCode = result.allPass ? 0 : 1;
