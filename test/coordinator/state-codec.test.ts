import { describe, expect, it } from 'vitest';
import { createStrategy } from '../../aggregation/registry.js';
import type { GlobalState } from '../../aggregation/strategy.js';
import { decodeGlobalState, decodeOfferedAdapter, encodeGlobalState, encodeOfferedAdapter, LAYOUT_METADATA_KEY } from '../../coordinator/state-codec.js';
import { decodeSafetensors } from '../../shared/safetensors/index.js';

const spec = {
  modules: [
    { path: 'model.layers.0.self_attn.q_proj', outFeatures: 6, inFeatures: 5, rank: 2, alpha: 4 },
    { path: 'model.layers.1.self_attn.q_proj', outFeatures: 3, inFeatures: 5, rank: 2, alpha: 4 },
  ],
  baseModelSha256: 'ab'.repeat(32),
};

function adapterArrays(state: GlobalState): unknown {
  const a = state.adapter;
  return a === null ? null : { layout: a.layout, factors: [...a.factors].map(([p, f]) => [p, f.A && [...f.A], f.B && [...f.B], f.R && [...f.R]]) };
}

describe('state codec: decodes what it encodes', () => {
  it.each(['fedavg', 'ffa', 'fedsb'] as const)('%s initial state, with dpClipNorm', (name) => {
    const state: GlobalState = { ...createStrategy(name).init(spec, '9'), dpClipNorm: 0.125 };
    const blob = encodeGlobalState(state);
    // The store keeps the meta as JSON text: go through it as the store does.
    const back = decodeGlobalState({ ...blob, meta: JSON.parse(JSON.stringify(blob.meta)) });
    expect(back.strategy).toBe(name);
    expect(back.round).toBe(0);
    expect(back.seed).toBe('9');
    expect(back.spec).toEqual(spec);
    expect(back.dpClipNorm).toBe(0.125);
    expect(adapterArrays(back)).toEqual(adapterArrays(state));
    expect(back.lastRoundUpdate).toBeNull();
  });

  it('flora after a round: the accumulated adapter and the last stack, with their own ranks', () => {
    const flora = createStrategy('flora');
    const init = flora.init(spec, '1');
    const round = flora.begin(init);
    for (const [k, rank] of [[1, 1], [2, 3]] as const) {
      const modules = spec.modules.map((m) => ({ ...m, rank, alpha: 2 * rank }));
      round.add({
        adapter: { layout: { variant: 'lora', modules }, factors: new Map(modules.map((m) => [m.path, { A: new Float32Array(rank * m.inFeatures).fill(k), B: new Float32Array(m.outFeatures * rank).fill(k / 2) }])) },
        numExamples: k,
        source: `c${k}`,
      });
    }
    const { state } = round.finish();
    const back = decodeGlobalState(encodeGlobalState(state));
    expect(back.adapter!.layout).toEqual(state.adapter!.layout);
    expect(back.lastRoundUpdate!.layout.modules.map((m) => m.rank)).toEqual([4, 4]);
    expect(adapterArrays({ ...back, adapter: back.lastRoundUpdate })).toEqual(adapterArrays({ ...state, adapter: state.lastRoundUpdate }));
  });

  it('offers an adapter as PEFT-named tensors with its layout in the metadata; none as an empty file', () => {
    const state = createStrategy('fedsb').init(spec, '3');
    const bytes = encodeOfferedAdapter(state.adapter);
    const { tensors, metadata } = decodeSafetensors(bytes);
    expect(tensors.map((t) => t.name).sort()).toEqual(
      spec.modules.flatMap((m) => ['lora_A', 'lora_B', 'fedsb_R'].map((f) => `base_model.model.${m.path}.${f}.weight`)).sort(),
    );
    expect(JSON.parse(metadata![LAYOUT_METADATA_KEY]!)).toEqual(JSON.parse(JSON.stringify(state.adapter!.layout)));
    expect(adapterArrays({ ...state, adapter: decodeOfferedAdapter(bytes) })).toEqual(adapterArrays(state));
    const empty = encodeOfferedAdapter(null);
    expect(decodeSafetensors(empty).tensors).toEqual([]);
    expect(decodeOfferedAdapter(empty)).toBeNull();
  });
});
