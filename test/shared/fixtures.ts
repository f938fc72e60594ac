/** Small random adapters for the shared/ tests, from a seeded generator so failures reproduce. */
import type { Adapter, AdapterModule, AdapterVariant, ModuleFactors } from '../../shared/adapter.js';

/** mulberry32: a tiny seeded PRNG, enough for test data (not for anything the project ships). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Float32 values uniform in [-1, 1). */
export function randomFloats(n: number, random: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = random() * 2 - 1;
  return out;
}

/** A complete adapter of the variant over the given modules, with random factors. */
export function randomAdapter(variant: AdapterVariant, modules: readonly AdapterModule[], seed = 1, extra: { baseModelSha256?: string; baseModelName?: string } = {}): Adapter {
  const random = seededRandom(seed);
  const factors = new Map<string, ModuleFactors>();
  for (const m of modules) {
    factors.set(m.path, {
      A: randomFloats(m.rank * m.inFeatures, random),
      B: randomFloats(m.outFeatures * m.rank, random),
      ...(variant === 'fedsb' && { R: randomFloats(m.rank * m.rank, random) }),
    });
  }
  return { layout: { variant, modules, ...extra }, factors };
}

/** Llama-style q/v modules of `layers` layers. */
export function llamaModules(layers: number, options: { hidden?: number; kv?: number; rank?: number; alpha?: number } = {}): AdapterModule[] {
  const hidden = options.hidden ?? 8;
  const kv = options.kv ?? 4;
  const rank = options.rank ?? 2;
  const alpha = options.alpha ?? 4;
  const out: AdapterModule[] = [];
  for (let i = 0; i < layers; i++) {
    out.push({ path: `model.layers.${i}.self_attn.q_proj`, outFeatures: hidden, inFeatures: hidden, rank, alpha });
    out.push({ path: `model.layers.${i}.self_attn.v_proj`, outFeatures: kv, inFeatures: hidden, rank, alpha });
  }
  return out;
}

/** Naive float64 product of row-major [rows, inner] @ [inner, cols], the reference for folding. */
export function naiveMatmul(x: Float32Array, y: Float32Array, rows: number, inner: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      let sum = 0;
      for (let k = 0; k < inner; k++) sum += x[i * inner + k]! * y[k * cols + j]!;
      out[i * cols + j] = sum;
    }
  }
  return out;
}
