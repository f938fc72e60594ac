/**
 * `llama`: a decoder-only transformer in TensorFlow.js with the Hugging Face Llama layout
 * (Touvron et al., 2023, "LLaMA"; transformers' `modeling_llama.py`):
 *   h0 = E[ids]
 *   per layer: a = h + o_proj(Attn(RoPE(q_proj(n1)), RoPE(k_proj(n1)), v_proj(n1))), n1 = RMSNorm(h)
 *              h' = a + down_proj(silu(gate_proj(n2)) * up_proj(n2)),             n2 = RMSNorm(a)
 *   logits = lm_head(RMSNorm(h_L))  (lm_head = E^T when tie_word_embeddings)
 * with RMSNorm(x) = w * x / sqrt(mean(x^2) + eps) (Zhang & Sennrich, 2019), causal grouped-query
 * attention (Ainslie et al., 2023: query head j reads key/value head floor(j / (H / H_kv)), as
 * transformers' `repeat_kv`) and SwiGLU (Shazeer, 2020). The same code serves Mistral (sliding-window
 * attention) and Qwen2 (biases on q/k/v): a linear module with a bias computes x W^T + b, the bias
 * kept beside the (possibly LoRA-wrapped) linear layer, as PEFT's base layer keeps it.
 *
 * RMSNorm, rotary, SwiGLU and the cross-entropy are fused ops (client/kernels/, issue 13) on webgpu
 * unless FEDLORA_FUSED_KERNELS=0; elsewhere the plain tfjs composition unless FEDLORA_FUSED_KERNELS=1.
 *
 * Tensor ownership: the model owns its weights and its cached masks and rotary tables; every
 * method that returns a tensor hands it to the caller, and intermediate tensors are freed by
 * tf.tidy, so a training step leaves `tf.memory().numTensors` unchanged.
 */
import * as tf from '@tensorflow/tfjs';
import { FedloraError } from '../../shared/errors.js';
import type { LlamaConfig } from './llama-config.js';
import { FrozenLinear, TrainableLinear, type LlamaLinear } from './llama-linear.js';
import {
  EMBED_TOKENS, FINAL_NORM, LLAMA_LINEAR_MODULES, LM_HEAD, inputNormName, llamaLinearHasBias, llamaLinearShape, llamaModulePath, postAttentionNormName,
  type LlamaLinearName,
} from './llama-names.js';
import { batchedMatmul, matmulPlainGrad } from './llama-matmul.js';
import { ropeTables } from './llama-rope.js';
import { crossEntropy } from '../kernels/fused-cross-entropy.js';
import { rmsNorm } from '../kernels/fused-rms-norm.js';
import { rope } from '../kernels/fused-rope.js';
import { swiglu } from '../kernels/fused-swiglu.js';

/** Gives the model one tensor at a time, by its Hugging Face name, in the stored layout. */
export type LlamaWeightSource = (name: string, shape: readonly number[]) => Promise<Float32Array> | Float32Array;

export interface LlamaBuildOptions {
  /**
   * Train every weight (pre-training) instead of freezing them (fine-tuning with LoRA).
   * @default false
   */
  trainable?: boolean;
  /**
   * Use the formulation a direct port would: frozen weights multiplied with transposed matmuls
   * (x W^T), attention with a transposed batched matmul, tfjs' own matmul gradients. Slower on
   * wasm; kept as the baseline `npm run bench llama` measures against.
   * @default false
   */
  naiveMatmuls?: boolean;
}

interface LlamaLayer {
  readonly inputNorm: tf.Tensor1D;
  readonly postAttentionNorm: tf.Tensor1D;
  readonly linears: Map<LlamaLinearName, LlamaLinear>;
  /** Bias vectors [out] of the modules that have one (Qwen2's q/k/v; Llama's attention_bias / mlp_bias). */
  readonly biases: Map<LlamaLinearName, tf.Tensor1D>;
}

/** Additive causal mask value: large enough that exp() underflows to 0, finite so 0 * mask stays 0. */
const MASKED = -1e9;

/** lm_head that reuses the (trainable) embedding matrix E [vocab, hidden]: logits = h E^T. */
class TiedTrainableHead implements LlamaLinear {
  readonly path = 'lm_head';
  readonly inFeatures: number;
  readonly outFeatures: number;
  constructor(private readonly embed: tf.Variable<tf.Rank.R2>) {
    [this.outFeatures, this.inFeatures] = embed.shape;
  }
  apply(x: tf.Tensor): tf.Tensor {
    const H = this.inFeatures;
    return tf.tidy(() => tf.reshape(matmulPlainGrad(tf.reshape(x, [-1, H]), tf.transpose(this.embed)), [...x.shape.slice(0, -1), this.outFeatures]));
  }
  weightOutIn(): tf.Tensor2D {
    return this.embed.clone();
  }
  trainableVariables(): tf.Variable[] {
    return []; // the embedding is listed once, by the model
  }
  dispose(): void {
    // the model disposes the embedding
  }
}

export class LlamaModel {
  /** Rotary tables for positions 0..ropePositions-1, grown on demand (configs allow up to 128k positions). */
  private rope: { cos: tf.Tensor2D; sin: tf.Tensor2D; positions: number } | null = null;
  private readonly masks = new Map<number, tf.Tensor2D>();
  private disposed = false;

  private constructor(
    readonly config: LlamaConfig,
    private readonly embed: tf.Tensor2D,
    private readonly layers: LlamaLayer[],
    private readonly finalNorm: tf.Tensor1D,
    private lmHead: LlamaLinear,
    /** Embeddings and norms when pre-training; the linear layers list their own. */
    private readonly ownVariables: tf.Variable[],
    private readonly naiveMatmuls: boolean,
  ) {}

  /**
   * Builds the model from weights given one tensor at a time in the Hugging Face layout, so a
   * checkpoint never needs to be in memory twice (each tensor is copied into tfjs and dropped).
   * @param config the validated configuration
   * @param source reads a tensor by name; the caller has checked names and shapes
   */
  static async build(config: LlamaConfig, source: LlamaWeightSource, options: LlamaBuildOptions = {}): Promise<LlamaModel> {
    const trainable = options.trainable === true;
    const naive = options.naiveMatmuls === true;
    const variables: tf.Variable[] = [];
    const created: Array<{ dispose(): void }> = [];
    const vector = async (name: string, size = config.hiddenSize): Promise<tf.Tensor1D> => {
      const t = tf.tensor1d(await source(name, [size]));
      if (!trainable) return t;
      const v = tf.variable(t, true);
      t.dispose();
      variables.push(v);
      return v as unknown as tf.Tensor1D;
    };
    const linear = async (path: string, shape: [number, number]): Promise<LlamaLinear> => {
      const w = tf.tensor2d(await source(`${path}.weight`, shape), shape);
      return trainable ? new TrainableLinear(path, w) : new FrozenLinear(path, w, false, naive);
    };
    try {
      const embedShape: [number, number] = [config.vocabSize, config.hiddenSize];
      const embedValues = tf.tensor2d(await source(EMBED_TOKENS, embedShape), embedShape);
      let embed: tf.Tensor2D = embedValues;
      if (trainable) {
        const v = tf.variable(embedValues, true);
        embedValues.dispose();
        variables.push(v);
        embed = v as unknown as tf.Tensor2D;
      }
      created.push(embed);
      const layers: LlamaLayer[] = [];
      for (let i = 0; i < config.numLayers; i++) {
        const inputNorm = await vector(inputNormName(i));
        created.push(inputNorm);
        const linears = new Map<LlamaLinearName, LlamaLinear>();
        const biases = new Map<LlamaLinearName, tf.Tensor1D>();
        for (const name of LLAMA_LINEAR_MODULES) {
          const path = llamaModulePath(i, name);
          const shape = llamaLinearShape(config, name);
          const l = await linear(path, shape);
          created.push(l);
          linears.set(name, l);
          if (llamaLinearHasBias(config, name)) {
            const b = await vector(`${path}.bias`, shape[0]);
            created.push(b);
            biases.set(name, b);
          }
        }
        const postAttentionNorm = await vector(postAttentionNormName(i));
        created.push(postAttentionNorm);
        layers.push({ inputNorm, postAttentionNorm, linears, biases });
      }
      const finalNorm = await vector(FINAL_NORM);
      created.push(finalNorm);
      let lmHead: LlamaLinear;
      if (config.tieWordEmbeddings) {
        lmHead = trainable
          ? new TiedTrainableHead(embed as unknown as tf.Variable<tf.Rank.R2>)
          : new FrozenLinear('lm_head', embed, true, naive);
      } else {
        lmHead = await linear('lm_head', [config.vocabSize, config.hiddenSize]);
      }
      return new LlamaModel(config, embed, layers, finalNorm, lmHead, variables, naive);
    } catch (e) {
      for (const c of created) c.dispose();
      throw e;
    }
  }

  /** True when every weight trains (built with `trainable`), false for a frozen base. */
  get isPretraining(): boolean {
    return this.ownVariables.length > 0;
  }

  /** Module paths of the seven linear layers of every decoder layer, in order. */
  modulePaths(): string[] {
    const paths: string[] = [];
    for (let i = 0; i < this.config.numLayers; i++) for (const n of LLAMA_LINEAR_MODULES) paths.push(llamaModulePath(i, n));
    return paths;
  }

  /** The linear layer at a Hugging Face module path (`model.layers.3.self_attn.q_proj`, `lm_head`). */
  linear(path: string): LlamaLinear {
    if (path === 'lm_head') return this.lmHead;
    const m = /^model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)$/.exec(path);
    const layer = m ? this.layers[Number(m[1])] : undefined;
    const l = layer?.linears.get(m![3] as LlamaLinearName);
    if (!l || l.path !== path) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `llama: no linear module '${path}'`);
    return l;
  }

  /**
   * Puts another layer (a LoRA layer wrapping the frozen one) at a module path. The model takes
   * ownership of the new layer; the old one is returned, still alive, to the caller (a LoRA layer
   * usually keeps using its weights).
   */
  replaceLinear(path: string, layer: LlamaLinear): LlamaLinear {
    const old = this.linear(path);
    if (layer.inFeatures !== old.inFeatures || layer.outFeatures !== old.outFeatures) {
      throw new FedloraError('FL_ERR_SHAPE_MISMATCH',
        `llama: layer for '${path}' is [out ${layer.outFeatures}, in ${layer.inFeatures}], the module is [out ${old.outFeatures}, in ${old.inFeatures}]`);
    }
    if (path === 'lm_head') {
      this.lmHead = layer;
    } else {
      const m = /^model\.layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)$/.exec(path)!;
      this.layers[Number(m[1])]!.linears.set(m[2] as LlamaLinearName, layer);
    }
    return old;
  }

  /** Every trainable variable: all weights when pre-training, else those of the LoRA layers. */
  trainableVariables(): tf.Variable[] {
    const vars = [...this.ownVariables];
    for (const layer of this.layers) for (const l of layer.linears.values()) vars.push(...l.trainableVariables());
    vars.push(...this.lmHead.trainableVariables());
    return vars;
  }

  /** The final hidden states [B, T, hidden] for token ids [B, T] (int32). */
  hidden(ids: tf.Tensor2D): tf.Tensor3D {
    this.assertAlive();
    const [B, T] = ids.shape;
    if (T > this.config.maxPositionEmbeddings) {
      throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `llama: sequence of ${T} tokens exceeds max_position_embeddings ${this.config.maxPositionEmbeddings}`);
    }
    const mask = this.causalMask(T);
    const rope = this.ropeFor(T);
    return tf.tidy(() => {
      const cos = tf.slice(rope.cos, [0, 0], [T, -1]);
      const sin = tf.slice(rope.sin, [0, 0], [T, -1]);
      let h: tf.Tensor = tf.reshape(this.embedTokens(tf.reshape(ids, [-1]) as tf.Tensor1D), [B, T, this.config.hiddenSize]);
      for (const layer of this.layers) {
        h = tf.add(h, this.attention(layer, this.rmsNorm(h, layer.inputNorm), B, T, cos, sin, mask));
        const n2 = this.rmsNorm(h, layer.postAttentionNorm);
        const gated = swiglu(this.project(layer, 'gate_proj', n2), this.project(layer, 'up_proj', n2));
        h = tf.add(h, this.project(layer, 'down_proj', gated));
      }
      return this.rmsNorm(h, this.finalNorm) as tf.Tensor3D;
    });
  }

  /** Logits [B, T, vocab] for token ids [B, T] (int32). */
  logits(ids: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => this.lmHead.apply(this.hidden(ids)) as tf.Tensor3D);
  }

  /**
   * Negative log-likelihood (nats) of each target token: nll[b, t] = -log p(targets[b, t] |
   * inputs[b, 0..t]). For next-token prediction, targets are the inputs shifted left by one.
   * @param inputs [B, T] int32
   * @param targets [B, T] int32
   * @returns [B, T]
   */
  tokenNll(inputs: tf.Tensor2D, targets: tf.Tensor2D): tf.Tensor2D {
    const [B, T] = inputs.shape;
    if (targets.shape[0] !== B || targets.shape[1] !== T) {
      throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `llama: targets [${targets.shape.join(', ')}] must match inputs [${B}, ${T}]`);
    }
    return tf.tidy(() => {
      const logits = tf.reshape(this.logits(inputs), [B * T, this.config.vocabSize]) as tf.Tensor2D;
      return tf.reshape(crossEntropy(logits, tf.reshape(targets, [-1]) as tf.Tensor1D), [B, T]) as tf.Tensor2D;
    });
  }

  /**
   * Mean next-token cross-entropy (nats) of whole sequences: position t predicts ids[t + 1], over
   * the targets whose mask is 1. With right padding and a mask of 0 on the pads, the pads change
   * no real token's logits (attention is causal), so no attention mask is needed.
   * @param ids [B, T] int32, T >= 2
   * @param mask [B, T] float32, 1 for real tokens, 0 for padding
   * @default mask all ones
   */
  loss(ids: tf.Tensor2D, mask?: tf.Tensor2D): tf.Scalar {
    const [B, T] = ids.shape;
    if (T < 2) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `llama: loss needs sequences of at least 2 tokens, got ${T}`);
    return tf.tidy(() => {
      const nll = this.tokenNll(tf.slice(ids, [0, 0], [B, T - 1]), tf.slice(ids, [0, 1], [B, T - 1]));
      if (mask === undefined) return tf.mean(nll);
      const m = tf.slice(mask, [0, 1], [B, T - 1]);
      return tf.div(tf.sum(tf.mul(nll, m)), tf.maximum(tf.sum(m), 1));
    });
  }

  /**
   * Every weight of the base model by its Hugging Face name, in the stored layout ([out, in] for
   * linears), one at a time: `visit` gets a tensor it must not keep (it is disposed after).
   */
  async forEachWeight(visit: (name: string, t: tf.Tensor) => Promise<void> | void): Promise<void> {
    this.assertAlive();
    await visit(EMBED_TOKENS, this.embed);
    for (let i = 0; i < this.layers.length; i++) {
      const layer = this.layers[i]!;
      await visit(inputNormName(i), layer.inputNorm);
      for (const name of LLAMA_LINEAR_MODULES) {
        const l = layer.linears.get(name)!;
        const w = l.weightOutIn();
        try {
          await visit(`${llamaModulePath(i, name)}.weight`, w);
        } finally {
          w.dispose();
        }
        const b = layer.biases.get(name);
        if (b !== undefined) await visit(`${llamaModulePath(i, name)}.bias`, b);
      }
      await visit(postAttentionNormName(i), layer.postAttentionNorm);
    }
    await visit(FINAL_NORM, this.finalNorm);
    if (!this.config.tieWordEmbeddings) {
      const w = this.lmHead.weightOutIn();
      try {
        await visit(LM_HEAD, w);
      } finally {
        w.dispose();
      }
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const layer of this.layers) {
      layer.inputNorm.dispose();
      layer.postAttentionNorm.dispose();
      for (const l of layer.linears.values()) l.dispose();
      for (const b of layer.biases.values()) b.dispose();
    }
    this.finalNorm.dispose();
    this.lmHead.dispose();
    this.embed.dispose();
    if (this.rope !== null) tf.dispose([this.rope.cos, this.rope.sin]);
    this.rope = null;
    for (const m of this.masks.values()) m.dispose();
    this.masks.clear();
  }

  private assertAlive(): void {
    if (this.disposed) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', 'llama: the model was disposed');
  }

  /**
   * Embedding rows of the ids. A frozen table uses gather; a trained one a one-hot matmul, whose
   * gradient is a matmul too: gather's gradient (UnsortedSegmentSum) has no wasm kernel in tfjs 4.22.
   */
  private embedTokens(ids: tf.Tensor1D): tf.Tensor2D {
    if (!this.isPretraining) return tf.gather(this.embed, ids);
    return tf.tidy(() => matmulPlainGrad(tf.oneHot(ids, this.config.vocabSize) as tf.Tensor2D, this.embed));
  }

  /** RMSNorm over the last axis: w * x / sqrt(mean(x^2) + eps) (fused where client/kernels/webgpu-program.ts says). */
  private rmsNorm(x: tf.Tensor, weight: tf.Tensor1D): tf.Tensor {
    return rmsNorm(x, weight, this.config.rmsNormEps);
  }

  /** Rotary tables covering T positions: the next power of two >= T (at least 256), capped at max_position_embeddings. */
  private ropeFor(T: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
    if (this.rope === null || this.rope.positions < T) {
      const positions = Math.min(this.config.maxPositionEmbeddings, Math.max(256, 2 ** Math.ceil(Math.log2(T))));
      const { cos, sin } = ropeTables(this.config.headDim, this.config.ropeTheta, positions, this.config.ropeScaling);
      const half = this.config.headDim / 2;
      if (this.rope !== null) tf.dispose([this.rope.cos, this.rope.sin]);
      this.rope = { cos: tf.keep(tf.tensor2d(cos, [positions, half])), sin: tf.keep(tf.tensor2d(sin, [positions, half])), positions };
    }
    return this.rope;
  }

  /**
   * [T, T] additive mask: 0 where the query may read the key, MASKED elsewhere: above the diagonal,
   * and with a sliding window W (Mistral) also where q - k >= W (transformers'
   * `sliding_window_overlay`: kv_idx > q_idx - W). Cached per T.
   */
  private causalMask(T: number): tf.Tensor2D {
    let m = this.masks.get(T);
    if (m === undefined) {
      const window = this.config.slidingWindow ?? Infinity;
      const values = new Float32Array(T * T);
      for (let q = 0; q < T; q++) for (let k = 0; k < T; k++) if (k > q || q - k >= window) values[q * T + k] = MASKED;
      m = tf.keep(tf.tensor2d(values, [T, T]));
      this.masks.set(T, m);
    }
    return m;
  }

  /**
   * Causal grouped-query attention of one layer for x [B, T, hidden]. The query heads that share
   * a key/value head are stacked along the time axis ([B, H_kv, rep * T, d]) so one batched matmul
   * serves them all, without copying keys and values rep times as `repeat_kv` does.
   */
  private attention(layer: LlamaLayer, x: tf.Tensor, B: number, T: number, cos: tf.Tensor2D, sin: tf.Tensor2D, mask: tf.Tensor2D): tf.Tensor {
    const { numHeads: H, numKvHeads: Hkv, headDim: d } = this.config;
    const rep = H / Hkv;
    const heads = (t: tf.Tensor, n: number): tf.Tensor => tf.transpose(tf.reshape(t, [B, T, n, d]), [0, 2, 1, 3]);
    const q = rope(heads(this.project(layer, 'q_proj', x), H), cos, sin);
    const k = rope(heads(this.project(layer, 'k_proj', x), Hkv), cos, sin);
    const v = heads(this.project(layer, 'v_proj', x), Hkv);
    // [B * Hkv, rep * T, d] @ [B * Hkv, d, T]: keys transposed explicitly so the matmul is plain (llama-matmul.ts).
    const qGrouped = tf.reshape(q, [B * Hkv, rep * T, d]) as tf.Tensor3D;
    const k3 = tf.reshape(k, [B * Hkv, T, d]) as tf.Tensor3D;
    const v3 = tf.reshape(v, [B * Hkv, T, d]) as tf.Tensor3D;
    const product = this.naiveMatmuls ? tf.matMul(qGrouped, k3, false, true) : batchedMatmul(qGrouped, tf.transpose(k3, [0, 2, 1]));
    const scores = tf.mul(product, 1 / Math.sqrt(d));
    const masked = tf.add(tf.reshape(scores, [B, Hkv, rep, T, T]), mask);
    const probs = tf.reshape(tf.softmax(masked, -1), [B * Hkv, rep * T, T]) as tf.Tensor3D;
    const context = tf.reshape(this.naiveMatmuls ? tf.matMul(probs, v3) : batchedMatmul(probs, v3), [B, H, T, d]);
    const merged = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [B, T, H * d]);
    return this.project(layer, 'o_proj', merged);
  }

  /** A linear module of a layer: x W^T (+ b where the family has a bias there). */
  private project(layer: LlamaLayer, name: LlamaLinearName, x: tf.Tensor): tf.Tensor {
    const y = layer.linears.get(name)!.apply(x);
    const b = layer.biases.get(name);
    return b === undefined ? y : tf.add(y, b);
  }
}
