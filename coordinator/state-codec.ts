/**
 * Global states to and from what the store keeps (JSON meta + one safetensors payload), and the
 * adapter a client is offered as safetensors with its layout in the metadata.
 *
 * The store payload holds the state's adapter under `adapter/<PEFT name>` and FLoRA's last stack
 * under `last/<PEFT name>`; the meta holds the layouts, so decoding rebuilds the exact adapters.
 */
import type { Adapter, AdapterLayout, FactorName, ModuleFactors } from '../shared/adapter.js';
import { adapterToTensors, peftTensorNames } from '../shared/adapter.js';
import { FedloraError } from '../shared/errors.js';
import { decodeSafetensors, encodeSafetensors } from '../shared/safetensors/index.js';
import { makeTensor, type Tensor } from '../shared/tensor.js';
import type { GlobalState, JobSpec as StrategyJobSpec, StrategyName } from '../aggregation/strategy.js';
import type { StateBlob } from './store/store.js';

/** The metadata key of an offered state that holds its AdapterLayout as JSON. */
export const LAYOUT_METADATA_KEY = 'fedlora.layout';

interface StateMeta {
  readonly format: 1;
  readonly strategy: StrategyName;
  readonly round: number;
  readonly seed: string;
  readonly spec: StrategyJobSpec;
  readonly adapter: AdapterLayout | null;
  readonly last: AdapterLayout | null;
  /** DP-FedAvg's adaptive clipping norm for the next round, when used. */
  readonly dpClipNorm?: number;
  /** FLoRA's per-round ranks of each module's accumulated stack. */
  readonly floraRanks?: Readonly<Record<string, readonly number[]>>;
}

function prefixed(prefix: string, adapter: Adapter | null): Tensor[] {
  if (adapter === null) return [];
  return adapterToTensors(adapter).map((t) => makeTensor(`${prefix}${t.name}`, t.shape, t.data));
}

function rebuild(layout: AdapterLayout | null, prefix: string, byName: ReadonlyMap<string, Tensor>): Adapter | null {
  if (layout === null) return null;
  const factors = new Map<string, ModuleFactors>();
  for (const m of layout.modules) {
    const names = peftTensorNames(m.path);
    const f: Partial<Record<FactorName, Float32Array>> = {};
    for (const factor of ['A', 'B', 'R'] as const) {
      const t = byName.get(`${prefix}${names[factor]}`);
      if (t !== undefined) f[factor] = t.data;
    }
    factors.set(m.path, f);
  }
  return { layout, factors };
}

/** A strategy's GlobalState as the store keeps it. */
export function encodeGlobalState(state: GlobalState): StateBlob {
  const meta: StateMeta = {
    format: 1,
    strategy: state.strategy,
    round: state.round,
    seed: state.seed,
    spec: state.spec,
    adapter: state.adapter?.layout ?? null,
    last: state.lastRoundUpdate?.layout ?? null,
    ...(state.dpClipNorm !== undefined && { dpClipNorm: state.dpClipNorm }),
    ...(state.floraRanks !== undefined && { floraRanks: state.floraRanks }),
  };
  return { meta, payload: encodeSafetensors([...prefixed('adapter/', state.adapter), ...prefixed('last/', state.lastRoundUpdate)]) };
}

/**
 * The GlobalState of a stored blob.
 * @throws FL_ERR_STORE when the blob is not a state this code wrote
 */
export function decodeGlobalState(blob: StateBlob): GlobalState {
  const meta = blob.meta as StateMeta;
  if (meta === null || typeof meta !== 'object' || meta.format !== 1) {
    throw new FedloraError('FL_ERR_STORE', 'stored global state has an unknown format (expected format 1)');
  }
  const { tensors } = decodeSafetensors(blob.payload, 'stored global state');
  const byName = new Map(tensors.map((t) => [t.name, t]));
  return {
    strategy: meta.strategy,
    round: meta.round,
    seed: meta.seed,
    spec: meta.spec,
    adapter: rebuild(meta.adapter, 'adapter/', byName),
    lastRoundUpdate: rebuild(meta.last, 'last/', byName),
    ...(meta.dpClipNorm !== undefined && { dpClipNorm: meta.dpClipNorm }),
    ...(meta.floraRanks !== undefined && { floraRanks: meta.floraRanks }),
  };
}

/** An adapter as an offer's `state`: PEFT-named tensors, its layout in the metadata; empty for null. */
export function encodeOfferedAdapter(adapter: Adapter | null): Uint8Array {
  if (adapter === null) return encodeSafetensors([]);
  return encodeSafetensors(adapterToTensors(adapter), { [LAYOUT_METADATA_KEY]: JSON.stringify(adapter.layout) });
}

/** Reads an offered adapter back (what a client does), for tests and tools. */
export function decodeOfferedAdapter(bytes: Uint8Array): Adapter | null {
  const { tensors, metadata } = decodeSafetensors(bytes, 'offered state');
  const text = metadata?.[LAYOUT_METADATA_KEY];
  if (text === undefined) return null;
  return rebuild(JSON.parse(text) as AdapterLayout, '', new Map(tensors.map((t) => [t.name, t])));
}
