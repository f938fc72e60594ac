/**
 * An independent float64 reference of the Hugging Face Llama forward pass, written with plain
 * loops straight from transformers' `modeling_llama.py` (per-head `repeat_kv`, `rotate_half`,
 * an explicit causal loop), sharing no code with client/models/llama.ts. Only for tiny configs.
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
}

type W = Map<string, Float32Array>;

function get(w: W, name: string): Float32Array {
  const v = w.get(name);
  if (!v) throw new Error(`naive llama: missing ${name}`);
  return v;
}

/** y[t][o] = sum_i x[t][i] * W[o][i], W stored [out, in] as PyTorch does. */
function linear(x: number[][], weight: Float32Array, outF: number, inF: number): number[][] {
  return x.map((row) => {
    const y = new Array<number>(outF).fill(0);
    for (let o = 0; o < outF; o++) {
      let s = 0;
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

/** rope(x) = x cos + rotate_half(x) sin, rotate_half(x) = cat(-x2, x1), cos/sin over cat(freqs, freqs). */
function rope(vec: number[], pos: number, theta: number): number[] {
  const d = vec.length;
  const half = d / 2;
  const rotated = [...vec.slice(half).map((v) => -v), ...vec.slice(0, half)];
  return vec.map((v, j) => {
    const freq = 1 / Math.pow(theta, (2 * (j % half)) / d);
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
    const q = linear(x, get(w, `${p}.self_attn.q_proj.weight`), c.numHeads * d, Hd);
    const k = linear(x, get(w, `${p}.self_attn.k_proj.weight`), c.numKvHeads * d, Hd);
    const v = linear(x, get(w, `${p}.self_attn.v_proj.weight`), c.numKvHeads * d, Hd);
    const attnOut: number[][] = Array.from({ length: T }, () => new Array<number>(c.numHeads * d).fill(0));
    const groups = c.numHeads / c.numKvHeads;
    for (let head = 0; head < c.numHeads; head++) {
      const kvHead = Math.floor(head / groups); // repeat_kv
      const qs = q.map((row, t) => rope(row.slice(head * d, (head + 1) * d), t, c.ropeTheta));
      const ks = k.map((row, t) => rope(row.slice(kvHead * d, (kvHead + 1) * d), t, c.ropeTheta));
      const vs = v.map((row) => row.slice(kvHead * d, (kvHead + 1) * d));
      for (let t = 0; t < T; t++) {
        const scores: number[] = [];
        for (let s = 0; s <= t; s++) scores.push(qs[t]!.reduce((a, qv, j) => a + qv * ks[s]![j]!, 0) / Math.sqrt(d));
        const max = Math.max(...scores);
        const e = scores.map((sc) => Math.exp(sc - max));
        const z = e.reduce((a, b) => a + b, 0);
        for (let s = 0; s <= t; s++) {
          for (let j = 0; j < d; j++) attnOut[t]![head * d + j]! += (e[s]! / z) * vs[s]![j]!;
        }
      }
    }
    const o = linear(attnOut, get(w, `${p}.self_attn.o_proj.weight`), Hd, c.numHeads * d);
    h = h.map((row, t) => row.map((val, i) => val + o[t]![i]!));
    const x2 = rmsNorm(h, get(w, `${p}.post_attention_layernorm.weight`), c.rmsNormEps);
    const g = linear(x2, get(w, `${p}.mlp.gate_proj.weight`), c.intermediateSize, Hd);
    const u = linear(x2, get(w, `${p}.mlp.up_proj.weight`), c.intermediateSize, Hd);
    const act = g.map((row, t) => row.map((gv, i) => (gv / (1 + Math.exp(-gv))) * u[t]![i]!));
    const down = linear(act, get(w, `${p}.mlp.down_proj.weight`), Hd, c.intermediateSize);
    h = h.map((row, t) => row.map((val, i) => val + down[t]![i]!));
  }
  const hn = rmsNorm(h, get(w, 'model.norm.weight'), c.rmsNormEps);
  const head = c.tieWordEmbeddings ? emb : get(w, 'lm_head.weight');
  return linear(hn, head, c.vocabSize, Hd);
}
