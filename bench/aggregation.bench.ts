/**
 * Aggregation throughput and memory: K = 10 and 100 clients of a 7B model's q/v adapters at r = 16
 * (32 layers x {q_proj, v_proj}, 4096 x 4096: A + B = 33.5 MB per client), per strategy, against
 * numpy's weighted running sum of the same arrays measured in the same run.
 *
 * Both sides generate client k's trainable data from the same formula (no K adapters in memory):
 *   x_k[i] = float32(((i * 2654435761 + k * 40503) mod 2^32) / 2^32 - 0.5)
 * over the concatenation of the trainable tensors (module order, then A, B / B / R). Only the
 * aggregation is timed (round.add + finish; numpy: acc += w * x with a float64 acc, as ours), after
 * one untimed warm-up round of 2 clients per case (numpy's accumulator is allocated once, too).
 * begin() runs when a round opens, while its clients train, and is printed apart for the DP case
 * (DP-FedAvg draws the round's noise there).
 * FEDLORA_BENCH_CASES (label substrings, comma-separated) and FEDLORA_BENCH_K pick a subset.
 * MB/s counts client data (the trainable tensors a client sends). Peak memory is sampled after each
 * add: RSS and ArrayBuffers above the level before the round.
 *
 * FLoRA's stack is the concatenation of the updates by definition (memory K x 33.5 MB), so it runs
 * at K = 10 only unless FEDLORA_BENCH_FLORA_K100=1.
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import { createInterface } from 'node:readline';
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

/**
 * numpy's side, a long-lived python3 process driven line by line, so that each client is timed on
 * both sides back to back (the dev machine is shared: interleaving puts both under the same load).
 * Per client it generates x_k (untimed) and times `acc += w * x` (float64 acc), wall and CPU time.
 */
const NUMPY = String.raw`
import json, resource, sys, time
import numpy as np
n = int(sys.argv[1])
idx = np.arange(n, dtype=np.uint32)
acc = np.zeros(n, dtype=np.float64)
x = np.empty(n, dtype=np.float32)
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == 'reset':
        acc[:] = 0
        print('{}', flush=True)
        continue
    k, w = int(cmd[0]), float(cmd[1])
    x[:] = ((idx * np.uint32(2654435761) + np.uint32((k * 40503) % 2**32)).astype(np.float64) * 2.0**-32 - 0.5).astype(np.float32)
    t0, c0 = time.perf_counter(), time.process_time()
    acc += w * x
    print(json.dumps({"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)
`;

interface Timing {
  wall: number;
  cpu: number;
  maxrss_mb: number;
}

class NumpyPeer {
  private readonly child;
  private readonly lines;

  constructor(floats: number) {
    this.child = spawn('python3', ['-c', NUMPY, String(floats)], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }

  private async ask(line: string): Promise<string> {
    this.child.stdin.write(`${line}\n`);
    const next = await this.lines.next();
    if (next.done) throw new Error('numpy baseline process ended');
    return next.value;
  }

  async reset(): Promise<void> {
    await this.ask('reset');
  }

  async add(k: number, w: number): Promise<Timing> {
    return JSON.parse(await this.ask(`${k} ${w}`)) as Timing;
  }

  close(): void {
    this.child.stdin.end();
  }
}

const MB = 1e6;

function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

export async function run(): Promise<void> {
  console.log(machineLine());
  console.log(`load average at start: ${os.loadavg().map((v) => v.toFixed(1)).join(' ')} (${os.cpus().length} cores)`);
  const spec = { modules: modules() };
  const cases: Array<{ name: StrategyName; label: string; options?: Parameters<typeof createStrategy>[1]; dp?: boolean }> = [
    { name: 'fedavg', label: 'fedavg (noise off)', options: { fedavg: { noise: 'off' } } },
    { name: 'fedavg', label: 'fedavg (noise sketch)', options: { fedavg: { noise: 'sketch' } } },
    { name: 'flora', label: 'flora' },
    { name: 'ffa', label: 'ffa (B only)' },
    { name: 'fedsb', label: 'fedsb (R only)' },
    { name: 'ffa', label: 'ffa + DP-FedAvg (z = 1)', dp: true },
  ];
  // FEDLORA_BENCH_CASES=ffa,fedsb: only the cases whose label contains one of these; FEDLORA_BENCH_K=10: only these K
  const only = process.env.FEDLORA_BENCH_CASES?.split(',').filter((w) => w !== '');
  const ks = process.env.FEDLORA_BENCH_K?.split(',').map(Number) ?? KS;
  const peers = new Map<number, NumpyPeer>();
  const times = new Map<string, { cpu: number; wall: number }>();
  const begins = new Map<string, number>();
  console.log('strategy                    K  client MB  ours MB/s cpu (wall)  numpy MB/s cpu (wall)  ratio cpu (wall)  peak RSS +MB  peak ArrayBuffers +MB  numpy maxRSS MB');
  for (const c of cases) {
    if (only !== undefined && !only.some((w) => c.label.includes(w))) continue;
    const inner = createStrategy(c.name, c.options);
    const strategy = c.dp ? new DpFedAvgStrategy(inner, { noiseMultiplier: 1, clipNorm: 1 }) : inner;
    const state = strategy.init(spec, 'bench');
    const client = reusableClient(strategy, state);
    if (!peers.has(client.bytes)) peers.set(client.bytes, new NumpyPeer(client.bytes / 4));
    const peer = peers.get(client.bytes)!;
    for (const K of ks) {
      if (c.name === 'flora' && K > 10 && process.env.FEDLORA_BENCH_FLORA_K100 !== '1') {
        console.log(`${c.label.padEnd(26)}  ${String(K).padStart(3)}  skipped: the stack holds K x ${(client.bytes / MB).toFixed(1)} MB by definition (set FEDLORA_BENCH_FLORA_K100=1)`);
        continue;
      }
      // One untimed round of 2 clients first: a coordinator runs many rounds, and from the second on
      // its sums reuse the released wasm memory (running-sum.ts releaseStagedSums), as numpy's peer
      // reuses its accumulator; a fresh memory's first-touch page faults are a one-time cost.
      const warm = strategy.begin(state);
      for (let k = 0; k < 2; k++) warm.add(client.update(k));
      warm.finish();
      await peer.reset();
      const before = process.memoryUsage();
      let peakRss = before.rss;
      let peakBuffers = before.arrayBuffers;
      let wall = 0;
      let cpu = 0;
      let npWall = 0;
      let npCpu = 0;
      let npRss = 0;
      // begin() is timed apart: it runs when the round opens, while the clients train (DP-FedAvg draws its noise there)
      const b0 = cpuSeconds();
      const round = strategy.begin(state);
      begins.set(`${c.label}@${K}`, cpuSeconds() - b0);
      for (let k = 0; k < K; k++) {
        const update = client.update(k);
        const t0 = performance.now();
        const c0 = cpuSeconds();
        round.add(update);
        if (k === K - 1) round.finish();
        cpu += cpuSeconds() - c0;
        wall += (performance.now() - t0) / 1000;
        const mem = process.memoryUsage();
        peakRss = Math.max(peakRss, mem.rss);
        peakBuffers = Math.max(peakBuffers, mem.arrayBuffers);
        const np = await peer.add(k, update.numExamples);
        npWall += np.wall;
        npCpu += np.cpu;
        npRss = np.maxrss_mb;
      }
      times.set(`${c.label}@${K}`, { cpu, wall });
      const data = (client.bytes * K) / MB;
      const fmt = (v: number) => v.toFixed(0);
      console.log(
        `${c.label.padEnd(26)}  ${String(K).padStart(3)}  ${(client.bytes / MB).toFixed(2).padStart(9)}  ${`${fmt(data / cpu)} (${fmt(data / wall)})`.padStart(20)}  ${`${fmt(data / npCpu)} (${fmt(data / npWall)})`.padStart(21)}  ${`${(npCpu / cpu).toFixed(2)} (${(npWall / wall).toFixed(2)})`.padStart(16)}  ${((peakRss - before.rss) / MB).toFixed(0).padStart(12)}  ${((peakBuffers - before.arrayBuffers) / MB).toFixed(0).padStart(21)}  ${npRss.toFixed(0).padStart(15)}`,
      );
    }
  }
  for (const p of peers.values()) p.close();
  // the price of privacy, against the same strategy without the wrapper in this run
  for (const K of ks) {
    const plain = times.get(`ffa (B only)@${K}`);
    const dp = times.get(`ffa + DP-FedAvg (z = 1)@${K}`);
    if (plain && dp) {
      const open = (label: string) => (1000 * (begins.get(`${label}@${K}`) ?? 0)).toFixed(0);
      console.log(`DP-FedAvg (z = 1) / plain ffa time at K = ${K}: ${(dp.cpu / plain.cpu).toFixed(2)} cpu (${(dp.wall / plain.wall).toFixed(2)} wall); the goal is <= 1.5`);
      console.log(`  begin() when the round opens, not in the times above: DP-FedAvg ${open('ffa + DP-FedAvg (z = 1)')} ms cpu (its noise), plain ffa ${open('ffa (B only)')} ms`);
    }
  }
  console.log('ratio = numpy time / our time on the same client data, by CPU time (wall time): > 1 means faster than numpy.');
  console.log('Each client is timed on both sides back to back, so both run under the same load. Memory flat in K: the same +MB at K = 10 and 100.');
}
