/**
 * What the fused model ops (fused-rms-norm.ts, fused-rope.ts, fused-swiglu.ts,
 * fused-cross-entropy.ts; issue 13) share: when they are used, and how one WGSL program is run
 * through tfjs' webgpu backend (the way fused-adamw.ts runs AdamW's).
 *
 * Each op is a `tf.customGrad` whose forward and backward are one WGSL program each on webgpu and
 * the same formulas written with tfjs ops elsewhere; the model uses the op only when
 * {@link fusedOpsMode} says so, and its plain composition (tfjs' own gradients) otherwise.
 */
import * as tf from '@tensorflow/tfjs';
import { FUSED_KERNELS_ENV } from './fused-adamw.js';

/**
 * `webgpu`: the fused ops run their WGSL programs (the default on webgpu);
 * `ops`: the fused ops run their tfjs-op forms (`FEDLORA_FUSED_KERNELS=1` on another backend: what
 * the CPU tests check the analytic gradients with);
 * `off`: the model's plain composition (`FEDLORA_FUSED_KERNELS=0`, and the default off webgpu).
 */
export type FusedOpsMode = 'webgpu' | 'ops' | 'off';

/** Read at each call, so a test or an A/B benchmark can switch it between steps. */
export function fusedOpsMode(): FusedOpsMode {
  const env = typeof process === 'undefined' ? undefined : process.env[FUSED_KERNELS_ENV];
  if (env === '0') return 'off';
  if (tf.getBackend() === 'webgpu') return 'webgpu';
  return env === '1' ? 'ops' : 'off';
}

/** Whether a fused op should run its WGSL program (rather than its tfjs-op form) now. */
export function onWebgpu(): boolean {
  return tf.getBackend() === 'webgpu';
}

interface WebgpuBackendLike {
  runWebGPUProgram(program: object, inputs: tf.TensorInfo[], dtype: 'float32', uniforms?: Uniform[]): tf.TensorInfo;
}

export interface Uniform {
  type: 'float32' | 'int32';
  data: number[];
}
export const f32 = (v: number): Uniform => ({ type: 'float32', data: [v] });
export const i32 = (v: number): Uniform => ({ type: 'int32', data: [v] });

export interface WgslProgram {
  /** Part of the pipeline cache key: the code may depend on nothing else but input ranks and dtypes. */
  readonly name: string;
  /** Binding names, one per input, in order; every one must be read by the code (fused-adamw.ts says why). */
  readonly inputNames: readonly string[];
  readonly inputs: readonly tf.Tensor[];
  readonly outputShape: readonly number[];
  readonly workgroupSize: number;
  /** Workgroups along x; tfjs spreads them over y and z past the device's per-dimension limit. */
  readonly workgroups: number;
  /** Extra uniform fields (`rows : i32, eps : f32,`) and their values, in the same order. */
  readonly uniforms: string;
  readonly uniformData: readonly Uniform[];
  /**
   * WGSL defining `fn main(index : i32)`: index is the flat invocation index (workgroup-major, so
   * `index / workgroupSize` is the workgroup and `localIndex` the lane); `uniforms.size` is the
   * output's size; write `result[i]`.
   */
  readonly code: string;
}

/** Runs one program on the active webgpu backend and returns its output as a tensor. */
export function runWgsl(p: WgslProgram): tf.Tensor {
  const program = {
    variableNames: [...p.inputNames],
    outputShape: [...p.outputShape],
    shaderKey: `fedlora_${p.name}`,
    dispatchLayout: { x: p.outputShape.map((_, i) => i) },
    dispatch: [p.workgroups, 1, 1],
    workgroupSize: [p.workgroupSize, 1, 1],
    size: true,
    uniforms: p.uniforms,
    getUserCode: () => p.code,
  };
  const backend = tf.backend() as unknown as WebgpuBackendLike;
  return tf.engine().makeTensorFromTensorInfo(backend.runWebGPUProgram(program, [...p.inputs], 'float32', [...p.uniformData]));
}

/**
 * WGSL for a workgroup-wide reduction of `buf[0..n)` (n a power of two) into buf[0], with `op`
 * combining two values (`a + b`, `max(a, b)`). Every lane must reach it: the barriers are in
 * uniform control flow only if the caller does not branch around it.
 */
export function treeReduce(buf: string, n: number, op: (a: string, b: string) => string): string {
  return `
  workgroupBarrier();
  for (var s = ${n / 2}u; s > 0u; s = s >> 1u) {
    if (localIndex < s) { ${buf}[localIndex] = ${op(`${buf}[localIndex]`, `${buf}[localIndex + s]`)}; }
    workgroupBarrier();
  }`;
}

export interface CustomOpResult {
  value: tf.Tensor;
  /** Gradients of the op's inputs, in order, from dy and the tensors given to `save`. */
  gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[];
}

/** `tf.customGrad` with its inputs as an array (tfjs' typing mixes them with the save function). */
export function customOp(f: (inputs: tf.Tensor[], save: tf.GradSaveFunc) => CustomOpResult): (...inputs: tf.Tensor[]) => tf.Tensor {
  const wrapped = (...args: Array<tf.Tensor | tf.GradSaveFunc>): CustomOpResult => {
    const save = args.pop() as tf.GradSaveFunc;
    return f(args as tf.Tensor[], save);
  };
  return tf.customGrad(wrapped as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (...inputs: tf.Tensor[]) => tf.Tensor;
}
