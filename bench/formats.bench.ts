/**
 * `npm run bench formats`: the formats layer (shared/safetensors, shared/adapter.ts) on a 7B
 * model's q/v adapters at r = 16 (32 layers x q, v; A [16, 4096] and B [4096, 16]: 33.5 MB),
 * each against a baseline measured in the same run on the same bytes:
 * - encode / decode (the wire) against one allocate-and-copy of the payload (`slice()`): each must
 *   produce fresh memory at least once, and on these VMs first-touch page faults, not the copy,
 *   dominate (33 MB: ~80 ms into fresh memory, ~13 ms into memory already touched);
 * - file write / read against fs.writeFile / fs.readFile of the same bytes;
 * - F16 and BF16 widening against the F32 copy of the same element count;
 * - Fed-SB folding B' = B R (m = 4096; r = 16 and 200) against ml-matrix's mmul.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Matrix } from 'ml-matrix';
import { foldRIntoB, peftTensorNames } from '../shared/adapter.js';
import { decodeToFloat32 } from '../shared/safetensors/dtype.js';
import { decodeSafetensors, encodeSafetensors, readSafetensorsFile, writeSafetensorsFile } from '../shared/safetensors/index.js';
import { makeTensor, type Tensor } from '../shared/tensor.js';
import { machineLine } from './machine.js';
import { interleavedMedians } from './timing.js';

const MB = 1e6;

function randomData(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = x / 2 ** 31 - 1;
  }
  return out;
}

/** The q/v LoRA tensors of a 7B Llama at r = 16. */
function adapterTensors(): Tensor[] {
  const tensors: Tensor[] = [];
  for (let layer = 0; layer < 32; layer++) {
    for (const proj of ['q_proj', 'v_proj']) {
      const names = peftTensorNames(`model.layers.${layer}.self_attn.${proj}`);
      tensors.push(makeTensor(names.A, [16, 4096], randomData(16 * 4096, layer * 2 + 1)));
      tensors.push(makeTensor(names.B, [4096, 16], randomData(4096 * 16, layer * 2 + 2)));
    }
  }
  return tensors;
}

export async function run(): Promise<void> {
  console.log(machineLine());
  const tensors = adapterTensors();
  const payload = encodeSafetensors(tensors);
  const size = payload.length;
  const dir = await mkdtemp(join(tmpdir(), 'fl-bench-formats-'));
  try {
    const path = join(dir, 'adapter.safetensors');
    const rawPath = join(dir, 'raw.bin');
    await writeFile(rawPath, payload);
    const t = await interleavedMedians(7, {
      allocCopy: () => payload.slice(),
      encode: () => encodeSafetensors(tensors),
      decode: () => decodeSafetensors(payload),
      writeFile: () => writeFile(rawPath, payload),
      fileWrite: () => writeSafetensorsFile(path, tensors),
      readFile: () => readFile(rawPath),
      fileRead: () => readSafetensorsFile(path),
    });
    const rate = (s: number): string => (size / MB / s).toFixed(0).padStart(6);
    console.log(`payload ${(size / MB).toFixed(1)} MB (${tensors.length} tensors)`);
    console.log('operation              MB/s  baseline MB/s  ratio to baseline');
    const row = (label: string, s: number, base: string, b: number): void =>
      console.log(`${label.padEnd(20)} ${rate(s)}  ${base.padEnd(9)}${rate(b)}  ${(b / s).toFixed(2)}`);
    row('encode (wire)', t.encode!, 'slice()', t.allocCopy!);
    row('decode (wire)', t.decode!, 'slice()', t.allocCopy!);
    row('file write', t.fileWrite!, 'writeFile', t.writeFile!);
    row('file read', t.fileRead!, 'readFile', t.readFile!);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  // Widening: 8.4M elements (the adapter's element count) of F16 / BF16 against the F32 copy.
  const n = size >> 2;
  const words = new Uint8Array(n * 2);
  for (let i = 0; i < words.length; i++) words[i] = (i * 2654435761) >>> 24;
  const f32 = new Uint8Array(n * 4);
  const w = await interleavedMedians(7, {
    f32: () => decodeToFloat32(f32, 'F32', n),
    f16: () => decodeToFloat32(words, 'F16', n),
    bf16: () => decodeToFloat32(words, 'BF16', n),
  });
  const melems = (s: number): string => (n / 1e6 / s).toFixed(0).padStart(6);
  console.log(`widening ${(n / 1e6).toFixed(1)}M elements     Melem/s  ratio to F32 copy`);
  console.log(`F32 copy (baseline, slice())  ${melems(w.f32!)}  1.00`);
  console.log(`F16 -> F32 (table)            ${melems(w.f16!)}  ${(w.f32! / w.f16!).toFixed(2)}`);
  console.log(`BF16 -> F32 (shift)           ${melems(w.bf16!)}  ${(w.f32! / w.bf16!).toFixed(2)}`);

  // Fed-SB folding B' = B R for one 4096 x r module, against ml-matrix (conversions included, as a caller would pay them).
  console.log('fold B R (m = 4096)   foldRIntoB ms  ml-matrix ms  speed-up');
  for (const r of [16, 200]) {
    const B = randomData(4096 * r, 7);
    const R = randomData(r * r, 8);
    const f = await interleavedMedians(5, {
      ours: () => foldRIntoB(B, R, 4096, r),
      mlMatrix: () => Float32Array.from(Matrix.from1DArray(4096, r, B).mmul(Matrix.from1DArray(r, r, R)).to1DArray()),
    });
    console.log(`r = ${String(r).padEnd(18)} ${(f.ours! * 1e3).toFixed(2).padStart(12)}  ${(f.mlMatrix! * 1e3).toFixed(2).padStart(12)}  ${(f.mlMatrix! / f.ours!).toFixed(1)}`);
  }
}
