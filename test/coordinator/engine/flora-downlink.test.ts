/**
 * FLoRA's downlink (issue 12 item 5): a client is offered only the rounds it has not merged, and
 * rebuilds the sum of every round from what it keeps (client/agent/flora-merged.ts). Real
 * coordinator over socket.io, hand-driven clients, seeded selection (3 clients, 2 a round, so
 * clients sit rounds out).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeGlobalState, decodeOfferedAdapter, encodeOfferedAdapter } from '../../../coordinator/state-codec.js';
import type { Adapter } from '../../../shared/adapter.js';
import { FloraMerged } from '../../../client/agent/flora-merged.js';
import { decodeOfferedState } from '../../../client/agent/update-payload.js';
import { floraOffer } from '../../../aggregation/flora.js';
import { denseDelta, stackAbsTerms } from '../../aggregation/fixtures.js';
import { SHA } from '../helpers.js';
import { useEngineHarness } from './harness.js';
import { enrolTestClients, TestClient } from '../protocol-client.js';

// large enough that every offer of the 6 rounds is cheaper as a stack than as W (m n > (m + n) R
// for R <= 20); the dense downlink has its own case below
const modules = [
  { path: 'model.layers.0.self_attn.q_proj', outFeatures: 64, inFeatures: 48 },
  { path: 'model.layers.1.self_attn.v_proj', outFeatures: 40, inFeatures: 48 },
];

const t = useEngineHarness({ modules, job: {} });
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Values (F32) an offered adapter carries. */
const floats = (a: Adapter | null): number => (a === null ? 0 : [...a.factors.values()].reduce((t, f) => t + (f.A?.length ?? 0) + (f.B?.length ?? 0), 0));

interface Seen {
  readonly client: number;
  readonly from: number;
  readonly through: number;
  readonly bytes: number;
  /** F32 values offered, and what every round so far holds. */
  readonly values: number;
  readonly fullValues: number;
  readonly resolved: Uint8Array;
  readonly full: Uint8Array;
}

describe('FLoRA offers only what a client lacks', () => {
  it('a client that missed rounds rebuilds the same sum of every round as one that did not, and an up-to-date offer stays one round big', async () => {
    const h = await t.start({ engine: { seededSelection: true } });
    const rounds = 6;
    const body = { strategy: 'flora', rounds, clientsPerRound: 2, minClients: 2, overSelection: 0, rank: 2, seed: 5, model: { sha256: SHA, targetModules: ['q_proj', 'v_proj'] } };
    const jobId = await t.createJob(body);
    const cs = await t.enrol(jobId, 3);
    const merged = cs.map(() => {
      const dir = mkdtempSync(join(tmpdir(), 'fedlora-flora-client-'));
      dirs.push(dir);
      return new FloraMerged(dir);
    });
    const seen: Seen[] = [];
    for (let round = 0; round < rounds; round++) {
      const offers = await TestClient.offersFrom(cs, 2);
      // what the coordinator would have offered a new client: every round so far
      const state = decodeGlobalState(h.coordinator.store.latestState(jobId)!);
      const full = encodeOfferedAdapter(state.adapter);
      for (const [c, o] of offers) {
        const k = cs.indexOf(c);
        const flora = o.plan.extra.flora as { from: number; through: number };
        expect(flora.through).toBe(round);
        const resolved = merged[k]!.resolve(o);
        seen.push({ client: k, from: flora.from, through: flora.through, bytes: o.state.length, values: floats(decodeOfferedAdapter(o.state)), fullValues: floats(state.adapter), resolved: resolved.state, full });
        const value = (name: string, i: number) => Math.sin(1 + k * 7 + round * 3 + name.length + i * 0.37);
        expect(await c.send(o, TestClient.payload(o, value, 2 + k))).toMatchObject({ ok: true });
      }
    }
    await cs[0]!.next('job_end');

    // every offered client ends each round with the coordinator's exact sum of the earlier rounds
    for (const s of seen) expect(Buffer.from(s.resolved).equals(Buffer.from(s.full))).toBe(true);
    // the three kinds of offer all happened: first (everything), up to date (one round), missed rounds
    const upToDate = seen.filter((s) => s.through >= 1 && s.from === s.through - 1);
    const missed = seen.filter((s) => s.from > 0 && s.from < s.through - 1);
    expect(seen.some((s) => s.from === 0 && s.through >= 1)).toBe(true);
    expect(upToDate.length).toBeGreaterThanOrEqual(3);
    expect(missed.length).toBeGreaterThanOrEqual(1);
    // each round stacks 2 clients of rank 2: an up-to-date offer is one such stack, whatever the round
    expect(new Set(upToDate.map((s) => s.bytes)).size).toBe(1);
    // one round of 2 clients at rank 2: (64 + 48) 4 + (40 + 48) 4 = 800 values, the history grows by that each round
    for (const s of upToDate) expect(s.values).toBe(800);
    for (const s of seen) expect(s.fullValues).toBe(800 * s.through);
    // a missed round costs one more stack, not the whole history
    for (const s of missed) expect(s.values).toBe(800 * (s.through - s.from));
  });
});

describe('FLoRA sends W when it is smaller than the stack', () => {
  // q: m n = 192 against (m + n) R = 28 R: one round (2 clients x rank 2, R = 4) goes as a stack, two
  // or more as W; head: m n = 30 against 13 R, always W
  const small = [
    { path: 'model.layers.0.self_attn.q_proj', outFeatures: 16, inFeatures: 12 },
    { path: 'model.head', outFeatures: 10, inFeatures: 3 },
  ];

  it('offers dense deltas where the missing rounds\' stack is larger; every client merges the stack path\'s sum within float32 rounding', async () => {
    const h = await t.start({ engine: { seededSelection: true } });
    const rounds = 8;
    const body = { strategy: 'flora', rounds, clientsPerRound: 2, minClients: 2, overSelection: 0, rank: 2, seed: 7, model: { sha256: SHA, targetModules: ['q_proj', 'head'] } };
    const jobId = await t.createJob(body);
    const cs = await enrolTestClients(h.api, h.coordinator.url, { jobId, sha256: SHA, modules: small, n: 3, track: t.clients });
    const merged = cs.map(() => new FloraMerged(null));
    const offers: Array<{ from: number; through: number; dense: readonly string[]; bytes: number; stackBytes: number }> = [];
    for (let round = 0; round < rounds; round++) {
      const offered = await TestClient.offersFrom(cs, 2);
      const state = decodeGlobalState(h.coordinator.store.latestState(jobId)!);
      for (const [c, o] of offered) {
        const k = cs.indexOf(c);
        const flora = o.plan.extra.flora as { from: number; through: number; dense?: string[] };
        const resolved = decodeOfferedState(merged[k]!.resolve(o).state);
        offers.push({ ...flora, dense: flora.dense ?? [], bytes: o.state.length, stackBytes: encodeOfferedAdapter(floraOffer(state, flora.from).adapter).length });
        if (state.adapter !== null) {
          // W is its rounds' float64 sum rounded once to float32 and its identity factor is exact,
          // so per element |mine - stack path| <= 2^-24 sum |s B_ik A_kj| over the stack's terms
          for (const m of small) {
            const got = denseDelta(resolved!, m.path);
            const want = denseDelta(state.adapter, m.path);
            const bound = stackAbsTerms(state.adapter, m.path);
            for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(2 ** -24 * bound[i]! * (1 + 1e-9));
          }
        } else expect(resolved).toBeNull();
        const value = (name: string, i: number) => Math.sin(2 + k * 5 + round * 3 + name.length + i * 0.41);
        expect(await c.send(o, TestClient.payload(o, value, 2 + k))).toMatchObject({ ok: true });
      }
    }
    await cs[0]!.next('job_end');

    const sent = offers.filter((o) => o.through > o.from);
    const q = small[0]!.path;
    const head = small[1]!.path;
    // the head is dense in every offer; q is dense exactly when the offer spans two rounds or more
    for (const o of sent) expect([...o.dense].sort()).toEqual((o.through - o.from >= 2 ? [q, head] : [head]).sort());
    expect(sent.some((o) => o.through - o.from === 1)).toBe(true); // up to date: q as its stack
    expect(sent.some((o) => o.through - o.from >= 2)).toBe(true); // missed rounds: q dense too
    const mean = (f: (o: (typeof sent)[number]) => number) => offers.reduce((t, o) => t + f(o), 0) / offers.length;
    expect(mean((o) => o.bytes)).toBeLessThan(mean((o) => o.stackBytes));
    console.info(`FLoRA downlink (${offers.length} offers, ${rounds} rounds, modules 16x12 and 10x3, 2 clients x rank 2 a round): ${Math.round(mean((o) => o.bytes))} bytes of state per client-round, stack only ${Math.round(mean((o) => o.stackBytes))}`);
  });
});
