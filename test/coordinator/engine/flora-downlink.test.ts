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
import { CreateJobResponseSchema } from '../../../shared/protocol/http.js';
import { decodeGlobalState, decodeOfferedAdapter, encodeOfferedAdapter } from '../../../coordinator/state-codec.js';
import type { Adapter } from '../../../shared/adapter.js';
import { FloraMerged } from '../../../client/agent/flora-merged.js';
import { SHA, startHarness, type Harness } from '../helpers.js';
import { enrolTestClients, TestClient } from '../protocol-client.js';

const modules = [
  { path: 'model.layers.0.self_attn.q_proj', outFeatures: 5, inFeatures: 4 },
  { path: 'model.layers.1.self_attn.v_proj', outFeatures: 3, inFeatures: 4 },
];

let h: Harness | undefined;
const clients: TestClient[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await h?.close();
  h = undefined;
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
    h = await startHarness({ engine: { seededSelection: true } });
    const rounds = 6;
    const body = { strategy: 'flora', rounds, clientsPerRound: 2, minClients: 2, overSelection: 0, rank: 2, seed: 5, model: { sha256: SHA, targetModules: ['q_proj', 'v_proj'] } };
    const jobId = CreateJobResponseSchema.parse((await h.api('POST', '/api/jobs', body)).json).id;
    const cs = await enrolTestClients(h.api, h.coordinator.url, { jobId, sha256: SHA, modules, n: 3, track: clients });
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
    // one round of 2 clients at rank 2: (5 + 4) 4 + (3 + 4) 4 = 64 values, the history grows by that each round
    for (const s of upToDate) expect(s.values).toBe(64);
    for (const s of seen) expect(s.fullValues).toBe(64 * s.through);
    // a missed round costs one more stack, not the whole history
    for (const s of missed) expect(s.values).toBe(64 * (s.through - s.from));
  });
});
