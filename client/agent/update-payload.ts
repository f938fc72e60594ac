/**
 * The two payloads of a round as the client reads and writes them (shared/protocol/events.ts):
 *  - the offer's `state`: a safetensors file of PEFT-named F32 tensors whose
 *    `__metadata__["fedlora.layout"]` is the AdapterLayout JSON (no tensors and no layout before
 *    FLoRA's first round);
 *  - the update: a safetensors file holding exactly the plan's `updateTensors` (F32, the planned
 *    shapes), with `__metadata__["fedlora.examples"]` (n_k, a decimal integer) and
 *    `__metadata__["fedlora.metrics"]` (a JSON object of finite numbers).
 */
import type { Adapter, AdapterLayout, FactorName, ModuleFactors } from '../../shared/adapter.js';
import { parsePeftTensorName, validateAdapter } from '../../shared/adapter.js';
import { FedloraError } from '../../shared/errors.js';
import type { Plan } from '../../shared/protocol/events.js';
import { decodeSafetensors, encodeSafetensors } from '../../shared/safetensors/index.js';
import { makeTensor, type Tensor } from '../../shared/tensor.js';

/** Metadata keys of the protocol (the coordinator reads the same names). */
export const LAYOUT_METADATA_KEY = 'fedlora.layout';
export const EXAMPLES_METADATA_KEY = 'fedlora.examples';
export const METRICS_METADATA_KEY = 'fedlora.metrics';

/**
 * Reads an offer's state adapter.
 * @returns null for an empty state (FLoRA before its first round)
 * @throws FL_ERR_ADAPTER_LAYOUT when the layout metadata is missing or does not match the tensors
 */
export function decodeOfferedState(bytes: Uint8Array): Adapter | null {
  // socket.io hands over a Node Buffer, often a view into a shared pool, and Buffer#slice is a
  // view rather than a copy, which shared/safetensors' F32 decode relies on: copy to a plain
  // Uint8Array first (one copy of the state per round).
  const plain = Buffer.isBuffer(bytes) ? new Uint8Array(bytes) : bytes;
  const { tensors, metadata } = decodeSafetensors(plain, 'offered global state');
  const layoutText = metadata?.[LAYOUT_METADATA_KEY];
  if (layoutText === undefined) {
    if (tensors.length === 0) return null;
    throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `offered global state: ${tensors.length} tensors but no __metadata__["${LAYOUT_METADATA_KEY}"]`);
  }
  let layout: AdapterLayout;
  try {
    layout = JSON.parse(layoutText) as AdapterLayout;
  } catch (e) {
    throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `offered global state: __metadata__["${LAYOUT_METADATA_KEY}"] is not JSON: ${(e as Error).message}`, {}, { cause: e });
  }
  const factors = new Map<string, Partial<Record<FactorName, Float32Array>>>();
  for (const t of tensors) {
    const parsed = parsePeftTensorName(t.name);
    if (parsed === undefined) throw new FedloraError('FL_ERR_ADAPTER_LAYOUT', `offered global state: tensor '${t.name}' is not a PEFT LoRA name`, { tensor: t.name });
    const f = factors.get(parsed.path) ?? {};
    f[parsed.factor] = t.data;
    factors.set(parsed.path, f);
  }
  const adapter: Adapter = { layout, factors: new Map<string, ModuleFactors>(layout.modules.map((m) => [m.path, factors.get(m.path) ?? {}])) };
  validateAdapter(adapter, { required: [], source: 'offered global state' });
  return adapter;
}

/**
 * Encodes a trained adapter as the plan's update: exactly `plan.updateTensors`, checked against
 * the planned shapes, so a mismatch is caught here rather than refused by the coordinator.
 * @param metrics finite numbers only (non-finite ones are dropped: JSON has no NaN)
 * @throws FL_ERR_UPDATE_TENSORS when the model lacks a planned tensor; FL_ERR_SHAPE_MISMATCH
 */
export function encodeUpdate(trained: Adapter, plan: Plan, examples: number, metrics: Readonly<Record<string, number>>): Uint8Array {
  if (!Number.isSafeInteger(examples) || examples < 1) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `the example count must be an integer >= 1, got ${examples}`);
  const tensors: Tensor[] = plan.updateTensors.map((spec) => {
    const parsed = parsePeftTensorName(spec.name);
    const data = parsed === undefined ? undefined : trained.factors.get(parsed.path)?.[parsed.factor];
    if (data === undefined) throw new FedloraError('FL_ERR_UPDATE_TENSORS', `the plan asks for tensor '${spec.name}', which the trained model does not hold`, { tensor: spec.name });
    const size = spec.shape.reduce((a, b) => a * b, 1);
    if (data.length !== size) {
      throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `tensor '${spec.name}' has ${data.length} values, the plan asks for [${spec.shape.join(', ')}]`, { tensor: spec.name });
    }
    return makeTensor(spec.name, spec.shape, data);
  });
  const finite = Object.fromEntries(Object.entries(metrics).filter(([, v]) => Number.isFinite(v)));
  return encodeSafetensors(tensors, { [EXAMPLES_METADATA_KEY]: String(examples), [METRICS_METADATA_KEY]: JSON.stringify(finite) });
}
