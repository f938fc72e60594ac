/**
 * What the coordinator sends a FLoRA client (docs/strategies.md, "flora"; docs/protocol.md): the
 * rounds it lacks ({@link floraOffer}), each module as the cheaper of its stack, (m + n) R values,
 * and its dense delta W = s B A, m n values (shared/flora-dense.ts has the wire format and the
 * client's identity-factor term).
 *
 * W is built from the accumulated stacks at m n R multiply-adds per module; offers that start at
 * the same round share it (a WeakMap per state: the new clients of a round, all from round 0).
 */
import type { Adapter, AdapterModule, ModuleFactors } from '../shared/adapter.js';
import { denseDelta, denseIsSmaller, denseModule, denseRank, encodeFloraOfferState } from '../shared/flora-dense.js';
import { floraOffer } from './flora.js';
import type { GlobalState } from './strategy.js';

/** The plan's `extra.flora` (client/agent/flora-merged.ts reads it). */
export interface FloraOfferExtra {
  /** The offered state holds rounds [from, through) (0-based counts of aggregated rounds). */
  readonly from: number;
  readonly through: number;
  /**
   * Per module, the rank each offered round adds to what the client holds: the rounds' stack ranks,
   * or for a dense module 0 for each round but the last, which adds min(m, n).
   */
  readonly ranks: Readonly<Record<string, readonly number[]>>;
  /** Modules sent as their dense delta; absent when none is. */
  readonly dense?: readonly string[];
}

export interface FloraDownlink {
  readonly extra: FloraOfferExtra;
  /** The offered state (shared/flora-dense.ts encodeFloraOfferState). */
  readonly stateBytes: Uint8Array;
  readonly through: number;
}

const cache = new WeakMap<GlobalState, Map<number, FloraDownlink>>();

/**
 * The offer for a client that has merged the first `merged` rounds of `state` (FLoRA's).
 * @param merged rounds the client has merged (floraOffer's rules: out of range counts as 0)
 */
export function floraDownlink(state: GlobalState, merged: number): FloraDownlink {
  const f = floraOffer(state, merged);
  let byFrom = cache.get(state);
  const hit = byFrom?.get(f.from);
  if (hit !== undefined) return hit;
  const dense = new Map<string, Float32Array>();
  const ranks: Record<string, readonly number[]> = { ...f.ranks };
  let adapter: Adapter | null = f.adapter;
  if (f.adapter !== null) {
    const modules: AdapterModule[] = [];
    const factors = new Map<string, ModuleFactors>();
    for (const m of f.adapter.layout.modules) {
      const stack = f.adapter.factors.get(m.path)!;
      if (!denseIsSmaller(m.outFeatures, m.inFeatures, m.rank)) {
        modules.push(m);
        factors.set(m.path, stack);
        continue;
      }
      dense.set(m.path, denseDelta(m, stack.A!, stack.B!));
      modules.push(denseModule(m));
      const rounds = f.through - f.from;
      ranks[m.path] = [...new Array<number>(rounds - 1).fill(0), denseRank(m.outFeatures, m.inFeatures)];
    }
    adapter = { layout: { ...f.adapter.layout, modules }, factors };
  }
  const offer: FloraDownlink = {
    extra: { from: f.from, through: f.through, ranks, ...(dense.size > 0 && { dense: [...dense.keys()] }) },
    stateBytes: encodeFloraOfferState(adapter, dense),
    through: f.through,
  };
  if (byFrom === undefined) {
    byFrom = new Map();
    cache.set(state, byFrom);
  }
  byFrom.set(f.from, offer);
  return offer;
}
