/**
 * Aggregation throughput and memory: K = 10 and 100 clients of a 7B model's q/v adapters at r = 16
 * (32 layers x {q_proj, v_proj}, 4096 x 4096: A + B = 33.5 MB per client), per strategy, against
 * numpy's weighted running sum of the same arrays measured in the same run.
 *
 * Both sides generate client k's trainable data from the same formula (no K adapters in memory):
 *   x_k[i] = float32(((i * 2654435761 + k * 40503) mod 2^32) / 2^32 - 0.5)
 * over the concatenation of the trainable tensors (module order, then A, B / B / R). Only the
 * aggregation is timed (round.add + finish; numpy: acc += w * x with a float64 acc, as ours).
 * MB/s counts client data (the trainable tensors a client sends). Peak memory is sampled after each
 * add: RSS and ArrayBuffers above the level before the round.
 *
 * FLoRA's stack is the concatenation of the updates by definition (memory K x 33.5 MB), so it runs
 * at K = 10 only unless FEDLORA_BENCH_FLORA_K100=1.
 */
import { execFileSync } from 'node:child_process';
import { DpFedAvgStrategy } from '../aggregation/dp-fedavg.js';
import { createStrategy } from '../aggregation/registry.js';
import type { ClientUpdate, GlobalState, Strategy, StrategyName } from '../aggregation/strategy.js';
import type { AdapterModule, ModuleFactors } from '../shared/adapter.js';
import { machineLine } from './machine.js';

const LAYERS = 32;
const SIZE = 4096;
const RANK = 16;
const KS = [10, 100];

function modules(): AdapterModule[] {
  const out: AdapterModule[] = [];
  for (let l = 0; l < LAYERS; l++) for (const p of ['q_proj', 'v_proj']) out.push({ path: `model.layers.${l}.self_attn.${p}`, outFeatures: SIZE, inFeatures: SIZE, rank: RANK, alpha: 2 * RANK });
  return out;
}

/** x_k[offset + i] by the shared formula, written into `out`. */
function fill(out: Float32Array, k: number, offset: number): void {
  const base = Math.imul(k, 40503);
  for (let i = 0; i < out.length; i++) out[i] = ((Math.imul(offset + i, 2654435761 | 0) + base) >>> 0) * 2 ** -32 - 0.5;
}

/** One reusable client update: the frozen factors from the state, trainable buffers refilled per client. */
function reusableClient(strategy: Strategy, state: GlobalState): { update: (k: number) => ClientUpdate; bytes: number } {
  const layout = state.adapter?.layout ?? { variant: strategy.variant, modules: state.spec.modules };
  const buffers: Array<{ data: Float32Array; offset: number }> = [];
  const factors = new Map<string, ModuleFactors>();
  let offset = 0;
  for (const m of layout.modules) {
    const f: Record<string, Float32Array> = {};
    for (const factor of strategy.trainable) {
      const len = factor === 'A' ? m.rank * m.inFeatures : factor === 'B' ? m.outFeatures * m.rank : m.rank * m.rank;
      f[factor] = new Float32Array(len);
      buffers.push({ data: f[factor], offset });
      offset += len;
    }
    factors.set(m.path, f);
  }
  const adapter = { layout, factors };
  return {
    bytes: offset * 4,
    update: (k) => {
      for (const b of buffers) fill(b.data, k, b.offset);
      return { adapter, numExamples: 1 + (k % 7), source: `client-${k}` };
    },
  };
}

const NUMPY = String.raw`
import json, resource, sys, time
import numpy as np
n, K = int(sys.argv[1]), int(sys.argv[2])
idx = np.arange(n, dtype=np.uint32)
acc = np.zeros(n, dtype=np.float64)
x = np.empty(n, dtype=np.float32)
t = 0.0
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for k in range(K):
    x[:] = ((idx * np.uint32(2654435761) + np.uint32((k * 40503) % 2**32)).astype(np.float64) * 2.0**-32 - 0.5).astype(np.float32)
    w = float(1 + k % 7)
    t0 = time.perf_counter()
    acc += w * x
    t += time.perf_counter() - t0
print(json.dumps({"seconds": t, "checksum": float(acc.sum()), "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
`;

function numpyBaseline(floats: number, k: number): { seconds: number; checksum: number; maxrss_mb: number } {
  return JSON.parse(execFileSync('python3', ['-c', NUMPY, String(floats), String(k)], { maxBuffer: 1 << 20 }).toString()) as { seconds: number; checksum: number; maxrss_mb: number };
}

const MB = 1e6;

export async function run(): Promise<void> {
  console.log(machineLine());
  const spec = { modules: modules() };
  const cases: Array<{ name: StrategyName; label: string; options?: Parameters<typeof createStrategy>[1]; dp?: boolean }> = [
    { name: 'fedavg', label: 'fedavg (noise off)', options: { fedavg: { noise: 'off' } } },
    { name: 'fedavg', label: 'fedavg (noise sketch)', options: { fedavg: { noise: 'sketch' } } },
    { name: 'flora', label: 'flora' },
    { name: 'ffa', label: 'ffa (B only)' },
    { name: 'fedsb', label: 'fedsb (R only)' },
    { name: 'ffa', label: 'ffa + DP-FedAvg (z = 1)', dp: true },
  ];
  const numpyCache = new Map<string, { seconds: number; checksum: number; maxrss_mb: number }>();
  console.log('strategy                    K    client MB  ours MB/s  numpy MB/s  ratio  peak RSS +MB  peak ArrayBuffers +MB  numpy maxRSS MB');
  for (const c of cases) {
    const inner = createStrategy(c.name, c.options);
    const strategy = c.dp ? new DpFedAvgStrategy(inner, { noiseMultiplier: 1, clipNorm: 1 }) : inner;
    const state = strategy.init(spec, 'bench');
    const client = reusableClient(strategy, state);
    for (const K of KS) {
      if (c.name === 'flora' && K > 10 && process.env.FEDLORA_BENCH_FLORA_K100 !== '1') {
        console.log(`${c.label.padEnd(26)}  ${String(K).padStart(3)}  skipped: the stack holds K x ${(client.bytes / MB).toFixed(1)} MB by definition (set FEDLORA_BENCH_FLORA_K100=1)`);
        continue;
      }
      const before = process.memoryUsage();
      let peakRss = before.rss;
      let peakBuffers = before.arrayBuffers;
      let seconds = 0;
      const round = strategy.begin(state);
      for (let k = 0; k < K; k++) {
        const update = client.update(k);
        const t0 = performance.now();
        round.add(update);
        seconds += (performance.now() - t0) / 1000;
        const mem = process.memoryUsage();
        peakRss = Math.max(peakRss, mem.rss);
        peakBuffers = Math.max(peakBuffers, mem.arrayBuffers);
      }
      const t0 = performance.now();
      const result = round.finish();
      seconds += (performance.now() - t0) / 1000;
      const mem = process.memoryUsage();
      peakRss = Math.max(peakRss, mem.rss);
      peakBuffers = Math.max(peakBuffers, mem.arrayBuffers);
      const key = `${client.bytes}/${K}`;
      if (!numpyCache.has(key)) numpyCache.set(key, numpyBaseline(client.bytes / 4, K));
      const np = numpyCache.get(key)!;
      const data = (client.bytes * K) / MB;
      const ours = data / seconds;
      const theirs = data / np.seconds;
      console.log(
        `${c.label.padEnd(26)}  ${String(K).padStart(3)}  ${(client.bytes / MB).toFixed(2).padStart(9)}  ${ours.toFixed(0).padStart(9)}  ${theirs.toFixed(0).padStart(10)}  ${(ours / theirs).toFixed(2).padStart(5)}  ${((peakRss - before.rss) / MB).toFixed(0).padStart(12)}  ${((peakBuffers - before.arrayBuffers) / MB).toFixed(0).padStart(21)}  ${np.maxrss_mb.toFixed(0).padStart(15)}`,
      );
      void result;
    }
  }
  console.log('ratio = our MB/s / numpy MB/s on the same client data (> 1: faster than numpy); memory flat in K means the same +MB at K = 10 and 100.');
}
