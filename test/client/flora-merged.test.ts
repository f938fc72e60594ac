/**
 * The two halves of FLoRA's downlink without a network: the coordinator's `floraOffer` (the rounds a
 * client lacks, as a range of the accumulated stack) and the client's `FloraMerged` (what it keeps
 * in its state folder, and how it rebuilds every round from an offer).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { floraOffer } from '../../aggregation/flora.js';
import { createStrategy } from '../../aggregation/registry.js';
import type { GlobalState } from '../../aggregation/strategy.js';
import { syntheticUpdate } from '../../aggregation/synthetic-clients.js';
import { decodeGlobalState, encodeGlobalState, encodeOfferedAdapter } from '../../coordinator/state-codec.js';
import { FLORA_MERGED_FILE, FloraMerged } from '../../client/agent/flora-merged.js';
import type { Offer } from '../../shared/protocol/events.js';
import { isFedloraError } from '../../shared/errors.js';

const spec = {
  modules: [
    { path: 'model.layers.0.self_attn.q_proj', outFeatures: 6, inFeatures: 5, rank: 2, alpha: 4 },
    { path: 'model.layers.1.self_attn.v_proj', outFeatures: 3, inFeatures: 5, rank: 2, alpha: 4 },
  ],
};

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** FLoRA states after 0..rounds rounds, with clients of ranks 1 and 3 (so rounds add rank 4). */
function states(rounds: number): GlobalState[] {
  const flora = createStrategy('flora');
  const out = [flora.init(spec, 'downlink')];
  for (let t = 0; t < rounds; t++) {
    const round = flora.begin(out[t]!);
    for (const [id, rank] of [['a', 1], ['b', 3]] as const) round.add(syntheticUpdate(flora, out[t]!, { id: `${id}${t}`, numExamples: rank + 1, rank }));
    out.push(round.finish().state);
  }
  return out;
}

/** The offer a client that has merged `merged` rounds gets before round state.round. */
function offerFor(state: GlobalState, merged: number): Offer {
  const f = floraOffer(state, merged);
  return {
    jobId: 'job-1',
    round: state.round,
    attempt: 0,
    deadline: 0,
    maxUpdateBytes: 1,
    state: encodeOfferedAdapter(f.adapter),
    plan: { extra: { flora: { from: f.from, through: f.through, ranks: f.ranks } } } as unknown as Offer['plan'],
  };
}

function folder(): string {
  const d = mkdtempSync(join(tmpdir(), 'fedlora-flora-merged-'));
  dirs.push(d);
  return d;
}

describe('floraOffer', () => {
  it('offers the rounds after those merged: a range of the accumulated stack, with each round\'s ranks', () => {
    const s = states(3);
    const last = s[3]!;
    expect(last.floraRanks).toEqual(Object.fromEntries(spec.modules.map((m) => [m.path, [4, 4, 4]])));
    const full = floraOffer(last, 0);
    expect(full.adapter!.layout.modules.map((m) => m.rank)).toEqual([12, 12]);
    const one = floraOffer(last, 2);
    expect([one.from, one.through]).toEqual([2, 3]);
    expect(one.adapter!.layout.modules.map((m) => m.rank)).toEqual([4, 4]);
    // the last round's range is that round's stack, value for value
    for (const m of spec.modules) {
      expect([...one.adapter!.factors.get(m.path)!.A!]).toEqual([...last.lastRoundUpdate!.factors.get(m.path)!.A!]);
      expect([...one.adapter!.factors.get(m.path)!.B!]).toEqual([...last.lastRoundUpdate!.factors.get(m.path)!.B!]);
    }
    expect(floraOffer(last, 3).adapter).toBeNull(); // nothing lacking
    expect(floraOffer(last, 7).from).toBe(0); // a claim beyond the state is not believed
    // per-round ranks survive the store
    expect(decodeGlobalState(encodeGlobalState(last)).floraRanks).toEqual(last.floraRanks);
  });
});

describe('FloraMerged (the client keeps what it merged)', () => {
  it('rebuilds the coordinator\'s exact sum whether it took every round, missed some, or is ahead; keeps it in the state folder (0600)', () => {
    const s = states(4);
    const fullAt = (t: number) => Buffer.from(encodeOfferedAdapter(s[t]!.adapter));
    // always there: every round one at a time
    const steady = new FloraMerged(folder());
    for (let t = 1; t <= 4; t++) expect(Buffer.from(steady.resolve(offerFor(s[t]!, t - 1)).state).equals(fullAt(t))).toBe(true);
    // missed rounds 2 and 3: the offer at round 4 holds rounds 2-4
    const dir = folder();
    const gappy = new FloraMerged(dir);
    gappy.resolve(offerFor(s[1]!, 0));
    expect(Buffer.from(gappy.resolve(offerFor(s[4]!, 1)).state).equals(fullAt(4))).toBe(true);
    expect(statSync(join(dir, FLORA_MERGED_FILE)).mode & 0o777).toBe(0o600);
    // a restarted agent reads it back: the next round needs only round 5's worth
    const again = new FloraMerged(dir);
    expect(again.load('job-1')!.through).toBe(4);
    // ahead of the coordinator's record (an update it did not count): drops its rounds from `from`
    const ahead = new FloraMerged(folder());
    ahead.resolve(offerFor(s[3]!, 0));
    expect(Buffer.from(ahead.resolve(offerFor(s[4]!, 1)).state).equals(fullAt(4))).toBe(true);
  });

  it('refuses an offer that starts after rounds it lacks, with FL_ERR_ROUND_STATE', () => {
    const s = states(3);
    const lacking = new FloraMerged(folder());
    lacking.resolve(offerFor(s[1]!, 0));
    let error: unknown;
    try {
      lacking.resolve(offerFor(s[3]!, 2));
    } catch (e) {
      error = e;
    }
    expect(isFedloraError(error, 'FL_ERR_ROUND_STATE')).toBe(true);
    expect((error as Error).message).toMatch(/holds rounds 3-3 of FLoRA's stack, but this client has merged only rounds 1-1/);
  });
});
