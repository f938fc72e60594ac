import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import type { Offer } from '../../../shared/protocol/events.js';
import type { Adapter } from '../../../shared/adapter.js';
import { parsePeftTensorName } from '../../../shared/adapter.js';
import { decodeGlobalState, decodeOfferedAdapter } from '../../../coordinator/state-codec.js';
import { decodeFloraOfferState } from '../../../shared/flora-dense.js';
import { SHA } from '../helpers.js';
import { useEngineHarness } from './harness.js';
import { TestClient } from '../protocol-client.js';

const modules = [
  { path: 'model.layers.0.self_attn.q_proj', outFeatures: 5, inFeatures: 4 },
  { path: 'model.layers.1.self_attn.v_proj', outFeatures: 3, inFeatures: 4 },
];

const t = useEngineHarness({ modules, job: {} });

/** dW = s B (R) A of one module, naive float64 [m, n]. */
function deltaW(m: number, n: number, r: number, s: number, A: ArrayLike<number>, B: ArrayLike<number>, R?: ArrayLike<number>): Float64Array {
  const BR = new Float64Array(m * r);
  for (let i = 0; i < m; i++) for (let c = 0; c < r; c++) {
    if (R === undefined) BR[i * r + c] = B[i * r + c]!;
    else for (let k = 0; k < r; k++) BR[i * r + c] += B[i * r + k]! * R[k * r + c]!;
  }
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let acc = 0;
    for (let c = 0; c < r; c++) acc += BR[i * r + c]! * A[c * n + j]!;
    out[i * n + j] = s * acc;
  }
  return out;
}

function adapterDelta(adapter: Adapter, path: string): Float64Array {
  const m = adapter.layout.modules.find((x) => x.path === path)!;
  const f = adapter.factors.get(path)!;
  return deltaW(m.outFeatures, m.inFeatures, m.rank, m.alpha / m.rank, f.A!, f.B!, f.R);
}

/** A client's "trained" value at index i of a tensor: deterministic, different per client, round and tensor. */
const trained = (k: number, round: number) => (name: string, i: number) => Math.sin(1 + k * 7 + round * 3 + name.length + i * 0.37);

describe.each(['ffa', 'fedsb', 'flora'] as const)('a full %s job over socket.io', (strategy) => {
  it('commits s B A = sum_k p_k s_k B_k A_k every round (float64 reference), and exports the adapter', async () => {
    const h = await t.start();
    const body = { strategy, rounds: 2, clientsPerRound: 2, minClients: 2, overSelection: 0, rank: 2, seed: 5, model: { sha256: SHA, targetModules: ['q_proj', 'v_proj'] }, ...(strategy === 'flora' && { ranks: [1, 3] }) };
    const jobId = await t.createJob(body);
    const cs = await t.enrol(jobId, 2);
    const examples = [2, 6];
    const floraSum = new Map(modules.map((m) => [m.path, new Float64Array(m.outFeatures * m.inFeatures)]));
    for (let round = 0; round < 2; round++) {
      const offers: Offer[] = await Promise.all(cs.map((c) => c.nextOffer()));
      const expected = new Map(modules.map((m) => [m.path, new Float64Array(m.outFeatures * m.inFeatures)]));
      for (let k = 0; k < 2; k++) {
        const o = offers[k]!;
        if (strategy === 'flora') {
          expect(o.plan.start).toBe('fresh');
          // Ranks by token order: the client with the first token made trains at 1, the second at 3.
          const tokenIndex = h.coordinator.store.getClient(cs[k]!.clientId)!.tokenIndex;
          expect(o.plan.rank).toBe([1, 3][tokenIndex]);
          // The offered state is the sum of every earlier round (none before round 1).
          // modules whose stack is larger than m n come as their dense delta W (aggregation/flora-downlink.ts;
          // docs/strategies.md, "flora"): read them back as the client does, as W's identity-factor term
          const offered = decodeFloraOfferState(o.state, (o.plan.extra.flora as { dense?: string[] }).dense ?? []);
          if (round === 0) expect(offered).toBeNull();
          else for (const m of modules) expect(Math.max(...adapterDelta(offered!, m.path).map((v, i) => Math.abs(v - floraSum.get(m.path)![i]!)))).toBeLessThan(1e-5);
        } else {
          expect(o.plan.start).toBe('global');
        }
        const value = trained(k, round);
        const frozen = decodeOfferedAdapter(o.state);
        const mine = new Map<string, { A?: Float32Array; B?: Float32Array; R?: Float32Array }>();
        for (const t of o.plan.updateTensors) {
          const p = parsePeftTensorName(t.name)!;
          mine.set(p.path, { ...mine.get(p.path), [p.factor]: Float32Array.from({ length: t.shape[0]! * t.shape[1]! }, (_, i) => value(t.name, i)) });
        }
        const p = examples[k]! / (examples[0]! + examples[1]!);
        for (const m of o.plan.modules) {
          const own = mine.get(m.path)!;
          const fz = frozen?.factors.get(m.path);
          const dW = deltaW(m.outFeatures, m.inFeatures, m.rank, m.alpha / m.rank, own.A ?? fz!.A!, own.B ?? fz!.B!, strategy === 'fedsb' ? own.R : undefined);
          const acc = expected.get(m.path)!;
          for (let i = 0; i < acc.length; i++) acc[i] += p * dW[i]!;
        }
        expect(await cs[k]!.send(o, TestClient.payload(o, value, examples[k]))).toMatchObject({ ok: true });
      }
      await cs[0]!.next('round_result');
      const state = decodeGlobalState(h.coordinator.store.latestState(jobId)!);
      for (const m of modules) {
        const want = expected.get(m.path)!;
        if (strategy === 'flora') {
          const total = floraSum.get(m.path)!;
          for (let i = 0; i < total.length; i++) total[i] += want[i]!;
        }
        const reference = strategy === 'flora' ? floraSum.get(m.path)! : want;
        const got = adapterDelta(state.adapter!, m.path);
        const scale = Math.max(...reference.map(Math.abs));
        // Float32 factors and float32 sums: agreement to ~1e-6 relative of the largest entry.
        for (let i = 0; i < got.length; i++) expect(Math.abs(got[i]! - reference[i]!)).toBeLessThanOrEqual(2e-6 * scale);
      }
    }
    expect(await cs[1]!.next('job_end')).toMatchObject({ status: 'completed', rounds: 2 });
    const tar = await h.api('GET', `/api/jobs/${jobId}/adapter`);
    expect(tar.status).toBe(200);
    expect(new TextDecoder().decode(tar.bytes.subarray(0, 19))).toBe('adapter_config.json');
    if (strategy === 'flora') {
      // Compressed export: the relative error of the best rank-2 approximation of every module's
      // accumulated dW together, against numpy's SVD of the float64 reference (the coordinator
      // works on float32 factors: agreement to 1e-4 relative).
      const compressed = await h.api('GET', `/api/jobs/${jobId}/adapter?rank=2`);
      expect(compressed.status).toBe(200);
      const reported = Number(compressed.headers.get('x-fedlora-compression-error'));
      const script = [
        'import json, sys, numpy as np',
        'mods = json.load(sys.stdin)',
        'tail = sum(float(np.sum(np.linalg.svd(np.array(m["w"]).reshape(m["m"], m["n"]), compute_uv=False)[2:] ** 2)) for m in mods)',
        'total = sum(float(np.sum(np.array(m["w"]) ** 2)) for m in mods)',
        'print((tail / total) ** 0.5)',
      ].join('\n');
      const input = JSON.stringify(modules.map((m) => ({ m: m.outFeatures, n: m.inFeatures, w: [...floraSum.get(m.path)!] })));
      const numpy = Number(execFileSync('python3', ['-c', script], { input, encoding: 'utf8' }));
      expect(numpy).toBeGreaterThan(0);
      expect(Math.abs(reported - numpy)).toBeLessThanOrEqual(1e-4 * numpy + 1e-7);
    } else {
      const refused = await h.api('GET', `/api/jobs/${jobId}/adapter?rank=2`);
      expect(refused.status).toBe(400);
      expect((refused.json as { error: { code: string } }).error.code).toBe('FL_ERR_INVALID_ARGUMENT');
    }
    expect((await h.api('GET', `/api/jobs/${jobId}/adapter?rank=zero`)).status).toBe(400);
  });
});
