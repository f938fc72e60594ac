/**
 * Tiny Llama checkpoints written by the tests themselves: config.json + model.safetensors (F32
 * through the shared writer; F16/BF16 and odd dtypes encoded here by hand, independently of the
 * reader under test), optionally sharded with model.safetensors.index.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeSafetensorsFile } from '../../shared/safetensors/index.js';
import { makeTensor } from '../../shared/tensor.js';

export { tinyConfigJson } from './llama-tiny-config.js';

export type FixtureDtype = 'F32' | 'F16' | 'BF16';

/** A tensor to write: values (any dtype given as raw bytes through `raw`) and shape. */
export interface FixtureTensor {
  shape: number[];
  values?: Float32Array;
  /** Raw little-endian bytes and their dtype, for dtypes the fixture does not encode. */
  raw?: { dtype: string; bytes: Uint8Array };
}

/** IEEE half bits of a float32 value that half represents exactly (a normal number or 0). */
function halfBits(v: number): number {
  const f = new Float32Array([v]);
  const bits = new Uint32Array(f.buffer)[0]!;
  const sign = (bits >>> 16) & 0x8000;
  if ((bits & 0x7fffffff) === 0) return sign;
  const exp = ((bits >>> 23) & 0xff) - 127 + 15;
  if (exp <= 0 || exp >= 31 || (bits & 0x1fff) !== 0) throw new Error(`fixture: ${v} is not exactly representable as a normal F16`);
  return sign | (exp << 10) | ((bits >>> 13) & 0x3ff);
}

function encode(values: Float32Array, dtype: FixtureDtype): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  const out = new Uint8Array(values.length * 2);
  const view = new DataView(out.buffer);
  const bits32 = new Uint32Array(Float32Array.from(values).buffer);
  for (let i = 0; i < values.length; i++) {
    if (dtype === 'BF16') {
      if ((bits32[i]! & 0xffff) !== 0) throw new Error(`fixture: ${values[i]} is not exactly representable as BF16`);
      view.setUint16(i * 2, bits32[i]! >>> 16, true);
    } else {
      view.setUint16(i * 2, halfBits(values[i]!), true);
    }
  }
  return out;
}

/** Rounds values so F16 and BF16 hold them exactly: multiples of 2^-6 in (-2, 2) (7 significant bits at most; BF16 has 8). */
export function roundForHalf(values: Float32Array): Float32Array {
  return values.map((v) => {
    const r = Math.round(Math.max(-1.98, Math.min(1.98, v)) * 64) / 64;
    return Object.is(r, -0) ? 0 : r;
  });
}

/** Writes a safetensors file by hand (any dtypes), laid out as the Python writer does. */
export async function writeRawSafetensors(path: string, tensors: Map<string, FixtureTensor>, dtype: FixtureDtype): Promise<void> {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    const bytes = t.raw?.bytes ?? encode(t.values!, dtype);
    header[name] = { dtype: t.raw?.dtype ?? dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(json.length), true);
  await writeFile(path, Buffer.concat([prefix, Buffer.from(json), ...chunks]));
}

export interface WriteCheckpointOptions {
  dtype?: FixtureDtype;
  /** Split the tensors over this many shards with model.safetensors.index.json. @default 1 */
  shards?: number;
  /** Tensors to write instead of / besides the weights (for broken checkpoints). */
  override?: Map<string, FixtureTensor | null>;
}

/** Writes config.json and the weights (HF layout) into `dir`. */
export async function writeCheckpoint(dir: string, configJson: object, weights: Map<string, Float32Array>, shapes: Map<string, number[]>, options: WriteCheckpointOptions = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify(configJson));
  const tensors = new Map<string, FixtureTensor>();
  for (const [name, values] of weights) tensors.set(name, { shape: shapes.get(name)!, values });
  for (const [name, t] of options.override ?? []) {
    if (t === null) tensors.delete(name);
    else tensors.set(name, t);
  }
  const dtype = options.dtype ?? 'F32';
  const shards = options.shards ?? 1;
  const plainF32 = dtype === 'F32' && [...tensors.values()].every((t) => t.raw === undefined && t.values !== undefined);
  if (shards === 1) {
    const path = join(dir, 'model.safetensors');
    if (plainF32) {
      await writeSafetensorsFile(path, [...tensors].map(([name, t]) => makeTensor(name, t.shape, t.values!)), { format: 'pt' });
    } else {
      await writeRawSafetensors(path, tensors, dtype);
    }
    return;
  }
  const names = [...tensors.keys()];
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part = new Map(names.filter((_, i) => i % shards === s).map((n) => [n, tensors.get(n)!]));
    for (const n of part.keys()) weightMap[n] = file;
    await writeRawSafetensors(join(dir, file), part, dtype);
  }
  await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
}
