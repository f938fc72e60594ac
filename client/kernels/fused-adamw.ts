/**
 * AdamW's update of one variable as WGSL programs on tfjs' webgpu backend (issue 13): the written
 * out op path (client/train/adamw.ts) dispatches ~14 elementwise kernels per variable, and on the
 * GPU each dispatch costs more than its arithmetic (docs/training.md, "Where a GPU step's time
 * goes"). Here it is three dispatches, one per output (the new p, m and v; a tfjs program writes
 * one output), each reading p, m, v and g once.
 *
 *   m' = b1 m + (1 - b1) g,   v' = b2 v + (1 - b2) g^2
 *   p' = p (1 - lr wd) - lr (m' / c1) / (sqrt(v' / c2) + eps),   c_i = 1 - b_i^t
 *
 * The same float32 operations in the same order as the op path, so both agree to float32 rounding
 * (checked on the GPU by tools/gpu/kernels-check.ts). Other backends keep the op path: this file
 * only acts once `prepareFusedKernels()` found the webgpu backend active.
 */
import * as tf from '@tensorflow/tfjs';

/** What this file uses of tfjs-backend-webgpu's backend object (the package is imported lazily). */
interface WebgpuBackendLike {
  runWebGPUProgram(program: object, inputs: tf.TensorInfo[], dtype: 'float32', uniforms?: Array<{ type: string; data: number[] }>): tf.TensorInfo;
}
interface WebgpuUtil {
  flatDispatchLayout(shape: number[]): { x: number[] };
  computeDispatch(layout: { x: number[] }, shape: number[], workgroupSize: [number, number, number]): [number, number, number];
}

/**
 * The environment variable that turns the fused kernels off (`0`), e.g. for an A/B benchmark. On by
 * default on webgpu: on the H200 they match the op path to 2.4e-7 relative
 * (tools/gpu/kernels-check.ts) and make the SmolLM-135M-shaped step ~25% faster (docs/training.md).
 */
export const FUSED_KERNELS_ENV = 'FEDLORA_FUSED_KERNELS';

let util: WebgpuUtil | null = null;

/** Loads what the fused kernels need when the webgpu backend is active; a no-op elsewhere. */
export async function prepareFusedKernels(env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  util = null;
  if (tf.getBackend() !== 'webgpu' || env[FUSED_KERNELS_ENV] === '0') return false;
  const name = '@tensorflow/tfjs-backend-webgpu'; // loaded by then: client/backends/webgpu.ts imported it
  util = ((await import(name)) as { webgpu_util: WebgpuUtil }).webgpu_util;
  return true;
}

/** Whether `fusedAdamW` may be called: the webgpu backend is active and the kernels prepared. */
export function fusedAdamWActive(): boolean {
  return util !== null && tf.getBackend() === 'webgpu';
}

const WORKGROUP: [number, number, number] = [128, 1, 1];
const OUTPUT = ['p', 'm', 'v'] as const;

function adamwProgram(size: number, which: (typeof OUTPUT)[number]): object {
  const layout = util!.flatDispatchLayout([size]);
  const value = which === 'm' ? 'm1' : which === 'v' ? 'v1' : 'P[index] * uniforms.decay - uniforms.lr * ((m1 / uniforms.c1) / (sqrt(v1 / uniforms.c2) + uniforms.eps))';
  return {
    variableNames: ['P', 'M', 'V', 'G'],
    outputShape: [size],
    shaderKey: `fedlora_adamw_${which}`,
    dispatchLayout: layout,
    dispatch: util!.computeDispatch(layout, [size], WORKGROUP),
    workgroupSize: WORKGROUP,
    size: true,
    uniforms: 'lr : f32, decay : f32, beta1 : f32, oneMinusBeta1 : f32, beta2 : f32, oneMinusBeta2 : f32, c1 : f32, c2 : f32, eps : f32,',
    getUserCode: () => `
      fn main(index : i32) {
        if (index < uniforms.size) {
          // Every input is used by every program: tfjs builds the bind group with all four, and
          // Dawn's automatic layout drops a binding the shader never touches (an invalid bind group).
          _ = P[index];
          let g = G[index];
          let m1 = M[index] * uniforms.beta1 + g * uniforms.oneMinusBeta1;
          let v1 = V[index] * uniforms.beta2 + (g * g) * uniforms.oneMinusBeta2;
          result[index] = ${value};
        }
      }`,
  };
}

export interface AdamWConstants {
  readonly lr: number;
  readonly weightDecay: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  /** 1 - beta1^t and 1 - beta2^t. */
  readonly c1: number;
  readonly c2: number;
}

/**
 * One AdamW update of p with gradient g and moments m, v, on the GPU; assigns the new values to
 * the three variables. The gradient stays the caller's.
 */
export function fusedAdamW(p: tf.Variable, m: tf.Variable, v: tf.Variable, g: tf.Tensor, k: AdamWConstants): void {
  const backend = tf.backend() as unknown as WebgpuBackendLike;
  const size = p.size;
  const flat = [p, m, v, g].map((t) => (t.rank === 1 ? t : tf.reshape(t, [size])));
  const f32 = (data: number): { type: string; data: number[] } => ({ type: 'float32', data: [data] });
  const uniforms = [f32(k.lr), f32(1 - k.lr * k.weightDecay), f32(k.beta1), f32(1 - k.beta1), f32(k.beta2), f32(1 - k.beta2), f32(k.c1), f32(k.c2), f32(k.epsilon)];
  const outs = OUTPUT.map((which) => tf.engine().makeTensorFromTensorInfo(backend.runWebGPUProgram(adamwProgram(size, which), flat, 'float32', uniforms)));
  for (const t of flat) if (!(t instanceof tf.Variable) && ![p, m, v, g].includes(t)) t.dispose();
  const [np, nm, nv] = outs.map((t) => tf.reshape(t, p.shape));
  p.assign(np!);
  m.assign(nm!);
  v.assign(nv!);
  tf.dispose([...outs, np!, nm!, nv!]);
}
