import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AdapterVariant } from '../../../shared/adapter.js';
import { isFedloraError } from '../../../shared/errors.js';
import { frozenMatmul, makeFrozenPair } from '../../../client/lora/frozen-matmul.js';
import { LoraDense } from '../../../client/lora/lora-dense.js';
import { setMatmulPolicy } from '../../../client/lora/matmul-policy.js';
import { add, mat, matmul, maxAbsDiff, scale, testValues, transpose, type Mat } from './reference.js';

// float32 sums of <= 16 products of values in [-1, 1] through three matmuls: an error of a few
// ulps of the result's magnitude (~10) is ~1e-5; 1e-4 leaves room and still catches any wrong
// layout or missing term (those give errors of order 0.1 to 10).
const TOL = 1e-4;

const n = 7; // in
const m = 5; // out
const r = 3;
const N = 4; // examples

beforeAll(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
});

/** A layer of the variant with non-zero random factors (set through the public API). */
function layerWith(variant: AdapterVariant, alpha = 6, bias = true): { layer: LoraDense; W0: Mat; A: Mat; B: Mat; R: Mat; b: Float32Array } {
  const W0 = testValues(m * n, 1);
  const b = testValues(m, 2);
  const layer = new LoraDense({ path: 'layers.0', variant, inFeatures: n, outFeatures: m, rank: r, alpha, weight: W0, ...(bias ? { bias: b } : {}) });
  const A = testValues(r * n, 3);
  const B = testValues(m * r, 4);
  const R = testValues(r * r, 5);
  layer.setFactors(variant === 'fedsb' ? { A, B, R } : { A, B });
  const Rm = variant === 'fedsb' ? mat(r, r, R) : mat(r, r, Array.from({ length: r * r }, (_, i) => (i % (r + 1) === 0 ? 1 : 0)));
  return { layer, W0: mat(m, n, W0), A: mat(r, n, A), B: mat(m, r, B), R: Rm, b: bias ? b : new Float32Array(m) };
}

/** y = x W0^T + b + s * x A^T R^T B^T, in float64. */
function reference(x: Mat, W0: Mat, A: Mat, B: Mat, R: Mat, b: Float32Array, s: number): Mat {
  const base = matmul(x, transpose(W0));
  const low = matmul(matmul(matmul(x, transpose(A)), transpose(R)), transpose(B));
  const y = add(base, scale(low, s));
  for (let i = 0; i < y.rows; i++) for (let j = 0; j < y.cols; j++) y.data[i * y.cols + j]! += b[j]!;
  return y;
}

describe('LoraDense forward', () => {
  for (const variant of ['lora', 'ffa', 'fedsb'] as const) {
    it(`${variant}: equals x W0^T + b + s B R A x computed naively (both matmul policies)`, async () => {
      for (const policy of ['explicit', 'flags'] as const) {
        const previous = setMatmulPolicy(policy);
        const { layer, W0, A, B, R, b } = layerWith(variant);
        const xv = testValues(N * n, 6);
        const y = tf.tidy(() => layer.forward(tf.tensor2d(xv, [N, n])));
        const want = reference(mat(N, n, xv), W0, A, B, R, b, 6 / r);
        expect(y.shape).toEqual([N, m]);
        expect(maxAbsDiff((await y.data()), want.data)).toBeLessThan(TOL);
        y.dispose();
        layer.dispose();
        setMatmulPolicy(previous);
      }
    });
  }

  it('takes [batch, time, n] inputs and weights given as [in, out]', async () => {
    const W0 = testValues(m * n, 1);
    const W0t = transpose(mat(m, n, W0));
    const layer = new LoraDense({ path: 'q', variant: 'lora', inFeatures: n, outFeatures: m, rank: r, alpha: 2, weight: Float32Array.from(W0t.data), weightLayout: 'in-out' });
    const A = testValues(r * n, 3);
    const B = testValues(m * r, 4);
    layer.setFactors({ A, B });
    const xv = testValues(2 * 3 * n, 7);
    const y = tf.tidy(() => layer.forward(tf.tensor3d(xv, [2, 3, n])));
    const eye = mat(r, r, Array.from({ length: r * r }, (_, i) => (i % (r + 1) === 0 ? 1 : 0)));
    const want = reference(mat(6, n, xv), mat(m, n, W0), mat(r, n, A), mat(m, r, B), eye, new Float32Array(m), 2 / r);
    expect(y.shape).toEqual([2, 3, m]);
    expect(maxAbsDiff((await y.data()), want.data)).toBeLessThan(TOL);
    y.dispose();
    layer.dispose();
  });

  it('a fresh layer computes exactly the base layer (B = 0, or R = 0 for fedsb)', async () => {
    for (const variant of ['lora', 'ffa', 'fedsb'] as const) {
      const W0 = testValues(m * n, 1);
      const layer = new LoraDense({ path: 'p', variant, inFeatures: n, outFeatures: m, rank: r, weight: W0, seed: 3 });
      const xv = testValues(N * n, 8);
      const y = tf.tidy(() => layer.forward(tf.tensor2d(xv, [N, n])));
      const base = matmul(mat(N, n, xv), transpose(mat(m, n, W0)));
      expect(maxAbsDiff((await y.data()), base.data)).toBeLessThan(TOL);
      y.dispose();
      layer.dispose();
    }
  });

  it('frees every tensor it made on dispose (no leak from construction, setFactors, merge)', async () => {
    const start = tf.memory().numTensors;
    for (const variant of ['lora', 'ffa', 'fedsb'] as const) {
      const { layer } = layerWith(variant);
      const y = tf.tidy(() => layer.forward(tf.ones([2, n])));
      y.dispose();
      if (variant === 'lora') layer.mergeStack(testValues(m * 2, 1), testValues(2 * n, 2), 0.5, 3);
      layer.dispose();
    }
    expect(tf.memory().numTensors).toBe(start);
  });

  it('rejects an input of the wrong width with a coded error', async () => {
    const { layer } = layerWith('lora');
    expect(() => layer.forward(tf.zeros([2, n + 1]))).toThrow(/FL_ERR_SHAPE_MISMATCH.*layers\.0.*\[\.\.\., 7\]/);
    layer.dispose();
  });
});

describe('frozen matmul with a custom gradient', () => {
  it("gives the same gradient as tf's own gradient of x W^T", async () => {
    const W = testValues(m * n, 11);
    const pair = makeFrozenPair(W, m, n);
    const op = frozenMatmul(() => pair);
    const Wt = tf.tensor2d(W, [m, n]);
    const x = tf.tensor2d(testValues(N * n, 12), [N, n]);
    const G = tf.tensor2d(testValues(N * m, 13), [N, m]);
    const custom = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(op(xx as tf.Tensor2D), G)))(x);
    const naive = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(tf.matMul(xx as tf.Tensor2D, Wt, false, true), G)))(x);
    expect(custom.shape).toEqual([N, n]);
    expect(maxAbsDiff((await custom.data()), (await naive.data()))).toBeLessThan(TOL);
    // and against float64: d/dx sum(G ⊙ x W^T) = G W
    expect(maxAbsDiff((await custom.data()), matmul(mat(N, m, (await G.data())), mat(m, n, W)).data)).toBeLessThan(TOL);
    tf.dispose([pair.forward, pair.backward, Wt, x, G, custom, naive]);
  });
});

describe('LoraDense training', () => {
  /** Gradients of L = sum(G ⊙ y) w.r.t. each factor, in PEFT layout, from tf. */
  async function factorGrads(layer: LoraDense, xv: Float32Array, gv: Float32Array): Promise<Map<string, Float32Array>> {
    const vars = layer.trainableVariables();
    const { grads } = tf.variableGrads(() => tf.tidy(() => tf.sum(tf.mul(layer.forward(tf.tensor2d(xv, [N, n])), tf.tensor2d(gv, [N, m])))), vars);
    const out = new Map<string, Float32Array>();
    for (const [i, name] of layer.trainableFactorNames().entries()) {
      const gT = tf.transpose(grads[vars[i]!.name]!);
      out.set(name, await gT.data() as Float32Array);
      gT.dispose();
    }
    tf.dispose(Object.values(grads));
    return out;
  }

  it('gradients of every factor equal the float64 formulas, for each variant and both matmul policies', async () => {
    const xv = testValues(N * n, 21);
    const gv = testValues(N * m, 22);
    const x = mat(N, n, xv);
    const G = mat(N, m, gv);
    for (const [variant, policy] of [['lora', 'explicit'], ['ffa', 'explicit'], ['fedsb', 'explicit'], ['lora', 'flags'], ['ffa', 'flags'], ['fedsb', 'flags']] as const) {
      const previous = setMatmulPolicy(policy);
      const { layer, A, B, R } = layerWith(variant, 6);
      const s = 6 / r;
      const grads = await factorGrads(layer, xv, gv);
      // y_low = s x A^T R^T B^T, L = sum(G ⊙ y):
      // dB = s G^T x A^T R^T; dA = s R^T B^T G^T x; dR = s B^T G^T x A^T.
      const GtX = matmul(transpose(G), x);
      const want: Record<string, Mat> = {
        B: scale(matmul(matmul(GtX, transpose(A)), transpose(R)), s),
        A: scale(matmul(matmul(transpose(R), transpose(B)), GtX), s),
        R: scale(matmul(matmul(transpose(B), GtX), transpose(A)), s),
      };
      const expected = variant === 'lora' ? ['A', 'B'] : variant === 'ffa' ? ['B'] : ['R'];
      expect([...grads.keys()]).toEqual(expected);
      for (const name of expected) expect(maxAbsDiff(grads.get(name)!, want[name]!.data)).toBeLessThan(TOL);
      layer.dispose();
      setMatmulPolicy(previous);
    }
  });

  it('the gradient w.r.t. the input equals G (W0 + s B R A), for each variant and policy (what earlier layers receive)', async () => {
    const xv = testValues(N * n, 23);
    const gv = testValues(N * m, 24);
    for (const [variant, policy] of [['lora', 'explicit'], ['ffa', 'explicit'], ['fedsb', 'explicit'], ['lora', 'flags'], ['ffa', 'flags'], ['fedsb', 'flags']] as const) {
      const previous = setMatmulPolicy(policy);
      const { layer, W0, A, B, R } = layerWith(variant, 6);
      const x = tf.tensor2d(xv, [N, n]);
      const G = tf.tensor2d(gv, [N, m]);
      const dx = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(layer.forward(xx), G)))(x);
      const want = matmul(mat(N, m, gv), add(W0, scale(matmul(matmul(B, R), A), 6 / r)));
      expect(maxAbsDiff((await dx.data()), want.data)).toBeLessThan(TOL);
      tf.dispose([x, G, dx]);
      layer.dispose();
      setMatmulPolicy(previous);
    }
  });

  it('an optimizer step changes only the factors the variant trains', async () => {
    for (const variant of ['lora', 'ffa', 'fedsb'] as const) {
      const { layer } = layerWith(variant);
      const before = (await layer.readFactors('all'));
      const w0Before = (await layer.readBaseWeight());
      const opt = tf.train.sgd(0.1);
      const x = tf.tensor2d(testValues(N * n, 31), [N, n]);
      const cost = opt.minimize(() => tf.sum(tf.square(layer.forward(x))), true, layer.trainableVariables());
      cost?.dispose();
      x.dispose();
      opt.dispose();
      const after = (await layer.readFactors('all'));
      const trained = new Set(layer.trainableFactorNames());
      for (const f of ['A', 'B', 'R'] as const) {
        if (before[f] === undefined) continue;
        const changed = maxAbsDiff(before[f]!, after[f]!) > 1e-6;
        expect({ variant, factor: f, changed }).toEqual({ variant, factor: f, changed: trained.has(f) });
      }
      expect(maxAbsDiff(w0Before, (await layer.readBaseWeight()))).toBe(0);
      layer.dispose();
    }
  });

  it('does not grow the tensor count across training steps', async () => {
    const { layer } = layerWith('lora');
    const opt = tf.train.adam(0.01);
    const x = tf.tensor2d(testValues(N * n, 41), [N, n]);
    const step = (): void => {
      const cost = opt.minimize(() => tf.mean(tf.square(layer.forward(x))), true, layer.trainableVariables());
      cost?.dispose();
    };
    step(); // Adam creates its moment variables on the first step
    const count = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) step();
    expect(tf.memory().numTensors).toBe(count);
    x.dispose();
    opt.dispose();
    layer.dispose();
  });
});

describe('LoraDense factors', () => {
  it('setFactors / getFactors round-trip in PEFT layout, trainable vs all', async () => {
    const { layer } = layerWith('fedsb');
    const A = testValues(r * n, 51);
    const B = testValues(m * r, 52);
    const R = testValues(r * r, 53);
    layer.setFactors({ A, B, R });
    const all = (await layer.readFactors('all'));
    expect(all.A).toEqual(A);
    expect(all.B).toEqual(B);
    expect(all.R).toEqual(R);
    expect(Object.keys(await layer.readFactors('trainable'))).toEqual(['R']);
    layer.dispose();
    const ffa = layerWith('ffa').layer;
    expect(Object.keys(await ffa.readFactors('trainable'))).toEqual(['B']);
    expect(Object.keys(await ffa.readFactors('all')).sort()).toEqual(['A', 'B']);
    ffa.dispose();
  });

  it('refuses factors of the wrong size, and R on a non-Fed-SB layer, naming the module', async () => {
    const { layer } = layerWith('lora');
    let err: unknown;
    try { layer.setFactors({ A: new Float32Array(r * n + 1) }); } catch (e) { err = e; }
    expect(isFedloraError(err, 'FL_ERR_ADAPTER_LAYOUT')).toBe(true);
    expect(String(err)).toMatch(/layers\.0.*A must be \[3, 7\] = 21 values, got 22/);
    expect(() => layer.setFactors({ R: new Float32Array(r * r) })).toThrow(/FL_ERR_ADAPTER_LAYOUT.*R is a Fed-SB factor/);
    const withNaN = new Float32Array(m * r);
    withNaN[4] = Number.NaN;
    expect(() => layer.setFactors({ B: withNaN })).toThrow(/FL_ERR_ADAPTER_LAYOUT: LoRA module 'layers\.0': B holds NaN at index 4; values must be finite/);
    expect(() => layer.mergeStack(new Float32Array(m).fill(Infinity), new Float32Array(n), 1, 0)).toThrow(/Bstack holds Infinity at index 0/);
    layer.dispose();
  });

  it('validates its options', async () => {
    const weight = new Float32Array(m * n);
    expect(() => new LoraDense({ path: 'x', variant: 'lora', inFeatures: n, outFeatures: m, rank: 0, weight })).toThrow(/FL_ERR_INVALID_ARGUMENT.*rank must be a positive integer/);
    expect(() => new LoraDense({ path: 'x', variant: 'lora', inFeatures: n, outFeatures: m, rank: 2, weight: new Float32Array(3) })).toThrow(/FL_ERR_SHAPE_MISMATCH.*weight must be \[5, 7\]/);
    expect(() => new LoraDense({ path: 'x', variant: 'lora', inFeatures: n, outFeatures: m, rank: 2, alpha: -1, weight })).toThrow(/alpha must be a positive number/);
  });

  it('draws the same initial A for the same seed, another for another seed', async () => {
    const weight = new Float32Array(m * n);
    const mk = (seed: number): LoraDense => new LoraDense({ path: 'x', variant: 'ffa', inFeatures: n, outFeatures: m, rank: r, weight, seed });
    const [a, b, c] = [mk(9), mk(9), mk(10)];
    expect((await a.readFactors()).A).toEqual((await b.readFactors()).A);
    expect(maxAbsDiff((await a.readFactors()).A!, (await c.readFactors()).A!)).toBeGreaterThan(0.01);
    const bound = 1 / Math.sqrt(n);
    expect(Math.max(...(await a.readFactors()).A!.map(Math.abs))).toBeLessThanOrEqual(bound);
    for (const l of [a, b, c]) l.dispose();
  });
});

describe('FLoRA merge', () => {
  it('W0 <- W0 + s Bstack Astack exactly (vs float64), then a fresh adapter that adds nothing', async () => {
    const { layer, W0 } = layerWith('lora', 6, false);
    const K = 5; // e.g. two clients of ranks 2 and 3
    const Bs = testValues(m * K, 61);
    const As = testValues(K * n, 62);
    const s = 0.75;
    layer.mergeStack(Bs, As, s, 77);
    const want = add(W0, scale(matmul(mat(m, K, Bs), mat(K, n, As)), s));
    // float32 of a 5-term sum of products in [-1, 1] plus W0: a few ulps of ~5, below 1e-5.
    expect(maxAbsDiff((await layer.readBaseWeight()), want.data)).toBeLessThan(1e-5);
    const f = (await layer.readFactors());
    expect(Math.max(...f.B!.map(Math.abs))).toBe(0);
    expect(Math.max(...f.A!.map(Math.abs))).toBeGreaterThan(0);
    const xv = testValues(N * n, 63);
    const y = tf.tidy(() => layer.forward(tf.tensor2d(xv, [N, n])));
    expect(maxAbsDiff((await y.data()), matmul(mat(N, n, xv), transpose(want)).data)).toBeLessThan(TOL);
    y.dispose();
    expect(() => layer.mergeStack(new Float32Array(m * 2), new Float32Array(3 * n), 1, 0)).toThrow(/FL_ERR_SHAPE_MISMATCH.*Astack must be \[2, 7\]/);
    layer.dispose();
    expect(() => layer.forward(tf.zeros([1, n]))).toThrow(/was disposed/);
  });
});
