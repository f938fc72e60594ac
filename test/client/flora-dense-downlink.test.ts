/**
 * FLoRA's dense downlink without a network: the coordinator's `floraDownlink` sends a module's
 * missing rounds as W = s B A when that holds fewer values than their stack (min(c (m + n) r, m n)
 * per module, docs/strategies.md), and the client's `FloraMerged` keeps W as an identity-factor
 * term, so what it merges equals the stack path's sum within W's one float32 rounding.
 */
import { describe, expect, it } from 'vitest';
import { floraDownlink } from '../../aggregation/flora-downlink.js';
import { createStrategy } from '../../aggregation/registry.js';
import type { GlobalState } from '../../aggregation/strategy.js';
import { syntheticUpdate } from '../../aggregation/synthetic-clients.js';
import { FloraMerged } from '../../client/agent/flora-merged.js';
import { decodeOfferedState } from '../../client/agent/update-payload.js';
import type { Adapter } from '../../shared/adapter.js';
import { isFedloraError } from '../../shared/errors.js';
import { decodeFloraOfferState } from '../../shared/flora-dense.js';
import type { Offer } from '../../shared/protocol/events.js';
import { denseDelta, stackAbsTerms } from '../aggregation/fixtures.js';

// q: m n = 192 against (m + n) R = 28 R, so one round (R = 4) goes as a stack, two or more dense;
// head: m n = 30 against 13 R, dense from the first round
const Q = { path: 'model.layers.0.self_attn.q_proj', outFeatures: 16, inFeatures: 12, rank: 2, alpha: 4 };
const HEAD = { path: 'model.head', outFeatures: 10, inFeatures: 3, rank: 2, alpha: 4 };
const spec = { modules: [Q, HEAD] };

/** FLoRA states after 0..rounds rounds, clients of ranks 1 and 3 (each round adds rank 4). */
function states(rounds: number): GlobalState[] {
  const flora = createStrategy('flora');
  const out = [flora.init(spec, 'dense-downlink')];
  for (let t = 0; t < rounds; t++) {
    const round = flora.begin(out[t]!);
    for (const [id, rank] of [['a', 1], ['b', 3]] as const) round.add(syntheticUpdate(flora, out[t]!, { id: `${id}${t}`, numExamples: rank + 1, rank }));
    out.push(round.finish().state);
  }
  return out;
}

function offerFor(state: GlobalState, merged: number): Offer {
  const f = floraDownlink(state, merged);
  return {
    jobId: 'job-1',
    round: state.round,
    attempt: 0,
    deadline: 0,
    maxUpdateBytes: 1,
    state: f.stateBytes,
    plan: { extra: { flora: f.extra } } as unknown as Offer['plan'],
  };
}

/**
 * What the client merges (s B A of its resolved state, float64) against the coordinator's stack of
 * every round. Each dense block is its rounds' float64 sum rounded once to float32, so per element
 * |difference| <= 2^-24 sum |terms| (the blocks are disjoint sets of terms); the identity factor
 * and the concatenation (scalings 2 and 1: A rows times 2) are exact.
 */
function expectSameSum(resolved: Uint8Array, full: Adapter): void {
  const mine = decodeOfferedState(resolved)!;
  for (const m of spec.modules) {
    const got = denseDelta(mine, m.path);
    const want = denseDelta(full, m.path);
    const bound = stackAbsTerms(full, m.path);
    for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!), `${m.path}[${i}]`).toBeLessThanOrEqual(2 ** -24 * bound[i]! * (1 + 1e-9));
  }
}

describe('floraDownlink: the cheaper of stack and dense delta per module', () => {
  const s = states(6);

  it('sends W where (m + n) R > m n, and the offer holds min((m + n) R, m n) values per module', () => {
    for (let t = 1; t <= 6; t++) {
      for (let merged = 0; merged < t; merged++) {
        const f = floraDownlink(s[t]!, merged);
        const R = 4 * (t - merged);
        const qDense = 16 * 12 < 28 * R;
        expect(f.extra.dense ?? []).toEqual(qDense ? [Q.path, HEAD.path] : [HEAD.path]);
        const values = Math.min(28 * R, 192) + Math.min(13 * R, 30);
        const header = f.stateBytes.length - 4 * values;
        expect(header, `t ${t} merged ${merged}`).toBeGreaterThan(0);
        expect(header).toBeLessThan(1024); // names, shapes and the layout: the rest is the values
        // a dense module adds min(m, n) to the client's stack in the offer's last round
        expect(f.extra.ranks[HEAD.path]).toEqual([...new Array<number>(t - merged - 1).fill(0), 3]);
      }
    }
  });

  it('the identity-factor term gives W exactly under float32 arithmetic', () => {
    const f = floraDownlink(s[6]!, 0);
    const state = decodeFloraOfferState(f.stateBytes, f.extra.dense!)!;
    for (const m of state.layout.modules) {
      const { A, B } = state.factors.get(m.path)!;
      const W = m.outFeatures <= m.inFeatures ? A! : B!;
      for (let i = 0; i < m.outFeatures; i++) {
        for (let j = 0; j < m.inFeatures; j++) {
          let acc = 0;
          for (let k = 0; k < m.rank; k++) acc = Math.fround(acc + Math.fround(B![i * m.rank + k]! * A![k * m.inFeatures + j]!));
          expect(acc).toBe(W[i * m.inFeatures + j]);
        }
      }
    }
  });
});

describe('FloraMerged with dense offers', () => {
  const s = states(6);

  it('every client ends each round with the stack path\'s sum: always there, missed rounds, new', () => {
    const steady = new FloraMerged(null);
    for (let t = 1; t <= 6; t++) expectSameSum(steady.resolve(offerFor(s[t]!, t - 1)).state, s[t]!.adapter!);
    const gappy = new FloraMerged(null);
    gappy.resolve(offerFor(s[1]!, 0));
    expectSameSum(gappy.resolve(offerFor(s[5]!, 1)).state, s[5]!.adapter!); // rounds 2-5 dense
    expectSameSum(gappy.resolve(offerFor(s[6]!, 5)).state, s[6]!.adapter!); // then a stack on top of them
    expectSameSum(new FloraMerged(null).resolve(offerFor(s[6]!, 0)).state, s[6]!.adapter!);
  });

  it('refuses an offer that starts inside rounds it holds as one dense delta, with FL_ERR_ROUND_STATE', () => {
    const client = new FloraMerged(null);
    client.resolve(offerFor(s[5]!, 0)); // rounds 1-5 as one W per module
    let error: unknown;
    try {
      client.resolve(offerFor(s[6]!, 3));
    } catch (e) {
      error = e;
    }
    expect(isFedloraError(error, 'FL_ERR_ROUND_STATE')).toBe(true);
    expect((error as Error).message).toMatch(/as one dense delta/);
  });
});
