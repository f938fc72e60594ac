/**
 * FLoRA's dense downlink (docs/strategies.md, "flora"): per module, an offer costs
 * min(c (m + n) r, m n) values. When the stack of the rounds a client lacks holds more values than
 * the dense delta itself ((m + n) R > m n, R its rank), the coordinator sends W = s B A [m, n]
 * (aggregation/flora-downlink.ts) and the client keeps it as one more stacked term of rank
 * k = min(m, n) with an identity factor and s = 1 (B = W, A = I_n when n <= m; else B = I_m,
 * A = W), so it merges it as it merges a stack (client/agent/flora-merged.ts). That term gives W
 * exactly in any float32 matrix product: each output is one product by 1, the rest products by 0.
 *
 * Wire format of such an offer's state (safetensors): `__metadata__["fedlora.layout"]` lists every
 * module as the client will hold it (a dense module with rank k and alpha k); stacked modules carry
 * PEFT `lora_A` / `lora_B` tensors as any offered state; a dense module carries only
 * `base_model.model.<path>.fedlora_delta.weight` [m, n] F32; `plan.extra.flora.dense` lists the
 * dense modules' paths.
 */
import type { Adapter, AdapterLayout, AdapterModule, ModuleFactors } from './adapter.js';
import { adapterToTensors, parsePeftTensorName, scaling, validateAdapter } from './adapter.js';
import { FedloraError } from './errors.js';
import { decodeSafetensors, encodeSafetensors } from './safetensors/index.js';
import { makeTensor, type Tensor } from './tensor.js';

/** The metadata key of the offered state's layout (as coordinator/state-codec.ts and client/agent/update-payload.ts). */
const LAYOUT_KEY = 'fedlora.layout';

/** The tensor name of a module's dense delta. */
export function denseDeltaName(path: string): string {
  return `base_model.model.${path}.fedlora_delta.weight`;
}

/** The rank of the identity-factor term a dense delta becomes: min(m, n). */
export function denseRank(m: number, n: number): number {
  return Math.min(m, n);
}

/** A module's layout entry once its delta is sent dense: rank and alpha min(m, n) (s = 1). */
export function denseModule(module: AdapterModule): AdapterModule {
  const k = denseRank(module.outFeatures, module.inFeatures);
  return { ...module, rank: k, alpha: k };
}

/** Whether W [m, n] holds fewer values than a stack of rank `rank` ((m + n) rank): the cheaper downlink. */
export function denseIsSmaller(m: number, n: number, rank: number): boolean {
  return m * n < (m + n) * rank;
}

/**
 * W = s B A [m, n] of a stacked module (B [m, r], A [r, n]), summed in float64 and rounded once to
 * float32. Costs m n r multiply-adds.
 */
export function denseDelta(module: AdapterModule, A: Float32Array, B: Float32Array): Float32Array {
  const { outFeatures: m, inFeatures: n, rank: r } = module;
  const s = scaling(module);
  const row = new Float64Array(n);
  const W = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    row.fill(0);
    for (let k = 0; k < r; k++) {
      const b = s * B[i * r + k]!;
      if (b === 0) continue;
      const a = k * n;
      for (let j = 0; j < n; j++) row[j]! += b * A[a + j]!;
    }
    W.set(row, i * n);
  }
  return W;
}

/** The identity-factor term of W [m, n] (see the file comment): rank min(m, n), s = 1. */
export function identityStack(m: number, n: number, W: Float32Array): Required<Pick<ModuleFactors, 'A' | 'B'>> {
  if (n <= m) {
    const A = new Float32Array(n * n);
    for (let i = 0; i < n; i++) A[i * n + i] = 1;
    return { A, B: W.slice() };
  }
  const B = new Float32Array(m * m);
  for (let i = 0; i < m; i++) B[i * m + i] = 1;
  return { A: W.slice(), B };
}

/**
 * The offered state: `adapter`'s modules as stacks, except those in `dense`, sent as W.
 * @param adapter the layout as the client will hold it (dense modules with denseModule's rank) and
 *   the stacked modules' factors (dense modules' factors are not read)
 * @param dense W [m, n] per dense module path
 */
export function encodeFloraOfferState(adapter: Adapter | null, dense: ReadonlyMap<string, Float32Array>): Uint8Array {
  if (adapter === null) return encodeSafetensors([]);
  const stackedModules = adapter.layout.modules.filter((m) => !dense.has(m.path));
  const tensors: Tensor[] = stackedModules.length === 0 ? [] : adapterToTensors({ layout: { ...adapter.layout, modules: stackedModules }, factors: adapter.factors });
  for (const m of adapter.layout.modules) {
    const W = dense.get(m.path);
    if (W !== undefined) tensors.push(makeTensor(denseDeltaName(m.path), [m.outFeatures, m.inFeatures], W));
  }
  return encodeSafetensors(tensors, { [LAYOUT_KEY]: JSON.stringify(adapter.layout) });
}

/**
 * Reads an offered FLoRA state back as the stacked adapter the client holds: dense modules become
 * their identity-factor term.
 * @param densePaths the offer's `plan.extra.flora.dense`
 * @throws FL_ERR_ADAPTER_LAYOUT for a dense module without its W, of the wrong shape or rank, or a
 *   tensor that is neither a PEFT factor nor a dense delta
 */
export function decodeFloraOfferState(bytes: Uint8Array, densePaths: readonly string[]): Adapter | null {
  // socket.io hands over a Buffer that may view a shared pool; the F32 decode wants its own bytes
  const plain = Buffer.isBuffer(bytes) ? new Uint8Array(bytes) : bytes;
  const { tensors, metadata } = decodeSafetensors(plain, 'offered FLoRA state');
  const layoutText = metadata?.[LAYOUT_KEY];
  if (layoutText === undefined) {
    if (tensors.length === 0 && densePaths.length === 0) return null;
    throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `offered FLoRA state: ${tensors.length} tensors but no __metadata__["${LAYOUT_KEY}"]`);
  }
  let layout: AdapterLayout;
  try {
    layout = JSON.parse(layoutText) as AdapterLayout;
  } catch (e) {
    throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `offered FLoRA state: __metadata__["${LAYOUT_KEY}"] is not JSON: ${(e as Error).message}`, {}, { cause: e });
  }
  const dense = new Set(densePaths);
  const byPath = new Map(layout.modules.map((m) => [m.path, m]));
  const factors = new Map<string, ModuleFactors>();
  for (const t of tensors) {
    const peft = parsePeftTensorName(t.name);
    if (peft !== undefined && !dense.has(peft.path)) {
      factors.set(peft.path, { ...factors.get(peft.path), [peft.factor]: t.data });
      continue;
    }
    const path = [...dense].find((p) => denseDeltaName(p) === t.name);
    const m = path === undefined ? undefined : byPath.get(path);
    if (path === undefined || m === undefined) throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `offered FLoRA state: tensor '${t.name}' is neither a stacked factor nor the dense delta of a module the offer sends dense`, { tensor: t.name });
    if (t.shape.length !== 2 || t.shape[0] !== m.outFeatures || t.shape[1] !== m.inFeatures || m.rank !== denseRank(m.outFeatures, m.inFeatures) || m.alpha !== m.rank) {
      throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `offered FLoRA state: dense delta of '${path}' has shape [${t.shape.join(', ')}] for a ${m.outFeatures} x ${m.inFeatures} module of rank ${m.rank}, alpha ${m.alpha} (want [${m.outFeatures}, ${m.inFeatures}], rank = alpha = ${denseRank(m.outFeatures, m.inFeatures)})`, { tensor: t.name });
    }
    factors.set(path, identityStack(m.outFeatures, m.inFeatures, t.data));
  }
  for (const p of dense) {
    if (!byPath.has(p) || factors.get(p)?.A === undefined) throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `offered FLoRA state: module '${p}' is sent dense but the state has no ${denseDeltaName(p)}`);
  }
  const adapter: Adapter = { layout, factors: new Map(layout.modules.map((m) => [m.path, factors.get(m.path) ?? {}])) };
  validateAdapter(adapter, { source: 'offered FLoRA state' });
  return adapter;
}
