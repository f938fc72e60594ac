/**
 * An independent float64 reference of the Hugging Face Llama forward pass, written with plain
 * loops straight from transformers' `modeling_llama.py` (per-head `repeat_kv`, `rotate_half`,
 * an explicit causal loop), sharing no code with client/models/llama.ts. Only for tiny configs.
 * Covers the families' differences too: biases on any linear (added when the weights hold
 * `<module>.bias`: Qwen2's q/k/v, Llama's attention_bias / mlp_bias), Llama 3's rope frequency
 * rescaling (written here from Meta's `apply_scaling`, per frequency) and Mistral's sliding window.
 */
export interface NaiveLlamaConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  tieWordEmbeddings: boolean;
  ropeScaling?: { factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };
  /** Key s is visible to query t when t - window < s <= t. */
  slidingWindow?: number;
}

type W = Map<string, Float32Array>;

function get(w: W, name: string): Float32Array {
  const v = w.get(name);
  if (!v) throw new Error(`naive llama: missing ${name}`);
  return v;
}

/** y[t][o] = sum_i x[t][i] * W[o][i] (+ b[o]), W stored [out, in] as PyTorch does. */
function linear(x: number[][], weight: Float32Array, outF: number, inF: number, bias?: Float32Array): number[][] {
  return x.map((row) => {
    const y = new Array<number>(outF).fill(0);
    for (let o = 0; o < outF; o++) {
      let s = bias === undefined ? 0 : bias[o]!;
      for (let i = 0; i < inF; i++) s += row[i]! * weight[o * inF + i]!;
      y[o] = s;
    }
    return y;
  });
}

function rmsNorm(x: number[][], weight: Float32Array, eps: number): number[][] {
  return x.map((row) => {
    const ms = row.reduce((a, v) => a + v * v, 0) / row.length;
    const inv = 1 / Math.sqrt(ms + eps);
    return row.map((v, i) => v * inv * weight[i]!);
  });
}

/** Meta's llama3 `apply_scaling` of one frequency (reference repo, models/llama3/model.py). */
function llama3Frequency(freq: number, s: NonNullable<NaiveLlamaConfig['ropeScaling']>): number {
  const wavelen = (2 * Math.PI) / freq;
  if (wavelen < s.originalMaxPositionEmbeddings / s.highFreqFactor) return freq;
  if (wavelen > s.originalMaxPositionEmbeddings / s.lowFreqFactor) return freq / s.factor;
  const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
  return (1 - smooth) * (freq / s.factor) + smooth * freq;
}

/** rope(x) = x cos + rotate_half(x) sin, rotate_half(x) = cat(-x2, x1), cos/sin over cat(freqs, freqs). */
function rope(vec: number[], pos: number, c: NaiveLlamaConfig): number[] {
  const d = vec.length;
  const half = d / 2;
  const rotated = [...vec.slice(half).map((v) => -v), ...vec.slice(0, half)];
  return vec.map((v, j) => {
    const base = 1 / Math.pow(c.ropeTheta, (2 * (j % half)) / d);
    const freq = c.ropeScaling === undefined ? base : llama3Frequency(base, c.ropeScaling);
    return v * Math.cos(pos * freq) + rotated[j]! * Math.sin(pos * freq);
  });
}

/** Logits [T][vocab] for one sequence of token ids. */
export function naiveLlamaLogits(c: NaiveLlamaConfig, w: W, ids: readonly number[]): number[][] {
  const T = ids.length;
  const Hd = c.hiddenSize;
  const d = c.headDim;
  const emb = get(w, 'model.embed_tokens.weight');
  let h: number[][] = ids.map((id) => Array.from(emb.subarray(id * Hd, (id + 1) * Hd)));
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    const x = rmsNorm(h, get(w, `${p}.input_layernorm.weight`), c.rmsNormEps);
    const q = linear(x, get(w, `${p}.self_attn.q_proj.weight`), c.numHeads * d, Hd, w.get(`${p}.self_attn.q_proj.bias`));
    const k = linear(x, get(w, `${p}.self_attn.k_proj.weight`), c.numKvHeads * d, Hd, w.get(`${p}.self_attn.k_proj.bias`));
    const v = linear(x, get(w, `${p}.self_attn.v_proj.weight`), c.numKvHeads * d, Hd, w.get(`${p}.self_attn.v_proj.bias`));
    const attnOut: number[][] = Array.from({ length: T }, () => new Array<number>(c.numHeads * d).fill(0));
    const groups = c.numHeads / c.numKvHeads;
    for (let head = 0; head < c.numHeads; head++) {
      const kvHead = Math.floor(head / groups); // repeat_kv
      const qs = q.map((row, t) => rope(row.slice(head * d, (head + 1) * d), t, c));
      const ks = k.map((row, t) => rope(row.slice(kvHead * d, (kvHead + 1) * d), t, c));
      const vs = v.map((row) => row.slice(kvHead * d, (kvHead + 1) * d));
      for (let t = 0; t < T; t++) {
        const first = c.slidingWindow === undefined ? 0 : Math.max(0, t - c.slidingWindow + 1);
        const scores: number[] = [];
        for (let s = first; s <= t; s++) scores.push(qs[t]!.reduce((a, qv, j) => a + qv * ks[s]![j]!, 0) / Math.sqrt(d));
        const max = Math.max(...scores);
        const e = scores.map((sc) => Math.exp(sc - max));
        const z = e.reduce((a, b) => a + b, 0);
        for (let s = first; s <= t; s++) {
          for (let j = 0; j < d; j++) attnOut[t]![head * d + j]! += (e[s - first]! / z) * vs[s]![j]!;
        }
      }
    }
    const o = linear(attnOut, get(w, `${p}.self_attn.o_proj.weight`), Hd, c.numHeads * d, w.get(`${p}.self_attn.o_proj.bias`));
    h = h.map((row, t) => row.map((val, i) => val + o[t]![i]!));
    const x2 = rmsNorm(h, get(w, `${p}.post_attention_layernorm.weight`), c.rmsNormEps);
    const g = linear(x2, get(w, `${p}.mlp.gate_proj.weight`), c.intermediateSize, Hd, w.get(`${p}.mlp.gate_proj.bias`));
    const u = linear(x2, get(w, `${p}.mlp.up_proj.weight`), c.intermediateSize, Hd, w.get(`${p}.mlp.up_proj.bias`));
    const act = g.map((row, t) => row.map((gv, i) => (gv / (1 + Math.exp(-gv))) * u[t]![i]!));
    const down = linear(act, get(w, `${p}.mlp.down_proj.weight`), Hd, c.intermediateSize, w.get(`${p}.mlp.down_proj.bias`));
    h = h.map((row, t) => row.map((val, i) => val + down[t]![i]!));
  }
  const hn = rmsNorm(h, get(w, 'model.norm.weight'), c.rmsNormEps);
  const head = c.tieWordEmbeddings ? emb : get(w, 'lm_head.weight');
  return linear(hn, head, c.vocabSize, Hd);
}
