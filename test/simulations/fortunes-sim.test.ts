/**
 * `fedlora sim --data fortunes` end to end on a tiny llama (1 layer, hidden 16, pre-trained 4
 * steps): real coordinator, agents in worker threads training on token sequences, perplexity per
 * category and on the union, the local-only and centralised baselines, and the base-model cache.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { appendFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runSim } from '../../simulations/run-sim.js';
import { simOptions } from '../../simulations/cli.js';
import { SimReportSchema, type SimReport } from '../../simulations/report.js';
import { ensureLlamaBase } from '../../simulations/llama-base.js';

const CATEGORIES = ['food', 'love', 'science'];
const TINY = { llamaHidden: 16, llamaLayers: 1, llamaHeads: 2, pretrainSteps: 4, pretrainBatchSize: 2, seqLen: 64, perCategory: 15 };

describe('fedlora sim --data fortunes (3 clients, 1 round, tiny llama)', () => {
  let report: SimReport;
  let out: string;
  let cache: string;
  const lines: string[] = [];

  beforeAll(async () => {
    out = mkdtempSync(join(tmpdir(), 'fedlora-fortunes-sim-'));
    cache = join(out, 'cache');
    const options = simOptions({ data: 'fortunes', categories: CATEGORIES.join(','), ...TINY, rounds: 1, strategy: 'fedavg', seed: 2, out, cache, baselines: true, workers: 2 }, (l) => lines.push(l));
    ({ report } = await runSim(options));
  }, 120_000);

  it('reports finite perplexities per category and on the union, for the base, the federated job and both baselines', () => {
    SimReportSchema.parse(JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')));
    const s = report.strategies.fedavg!;
    expect(s.status).toBe('completed');
    expect(s.rounds).toHaveLength(1);
    expect(s.rounds[0]!.participants).toBe(3);
    const all = [report.base, s.final, s.rounds[0]!, report.baselines!.centralised, ...report.baselines!.local];
    for (const x of all) {
      expect(Number.isFinite(x.perplexity)).toBe(true);
      expect(x.perplexity).toBeGreaterThan(1);
    }
    for (const m of [report.base.perplexityByCategory!, s.final.perplexityByCategory!, report.baselines!.centralised.byCategory]) {
      expect(Object.keys(m)).toEqual(CATEGORIES);
      for (const v of Object.values(m)) expect(Number.isFinite(v) && v > 1).toBe(true);
    }
    // a byte-level model that has seen 4 steps is near uniform over the 259 ids, not better than it
    expect(report.base.perplexity).toBeLessThan(300);
    expect(lines.some((l) => /\[fedavg\] round 1\/1 .*test ppl \d/.test(l))).toBe(true);
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).toContain('Test perplexity per category');
    expect(html).toContain(`<td>centralised</td>${CATEGORIES.map((c) => `<td>${report.baselines!.centralised.byCategory[c]!.toFixed(2)}</td>`).join('')}`);
  });

  it('gives client k category k only, and each local-only adapter its own category', () => {
    expect(report.data.classCounts).toEqual([0, 1, 2].map((k) => [0, 1, 2].map((c) => (c === k ? report.data.clientRows[k]! : 0))));
    expect(report.baselines!.local.map((l) => l.categories)).toEqual(CATEGORIES.map((c) => [c]));
    for (const l of report.baselines!.local) expect(l.ownPerplexity).toBeCloseTo(l.byCategory[l.categories[0]!]!, 6);
    // same budget: one round x one epoch over each example, batch 16
    const centralisedSteps = report.baselines!.centralised.steps;
    expect(centralisedSteps).toBe(Math.ceil(report.data.federatedRows / 16));
    report.baselines!.local.forEach((l, k) => expect(l.steps).toBe(Math.ceil(report.data.clientRows[k]! / 16)));
  });

  it('reuses the cached base while its SHA-256 verifies, and pre-trains again when the weights changed', async () => {
    const recipe = { hidden: 16, layers: 1, heads: 2, kvHeads: 1, steps: 4, batchSize: 2, seqLen: 64, lr: 3e-3, seed: 0 };
    const log: string[] = [];
    const again = await ensureLlamaBase(recipe, cache, (l) => log.push(l));
    expect(again.cached).toBe(true);
    expect(again.sha256).toBe(report.base.sha256);
    appendFileSync(join(again.dir, 'model.safetensors'), Buffer.from([0]));
    const rebuilt = await ensureLlamaBase(recipe, cache, (l) => log.push(l));
    expect(rebuilt.cached).toBe(false);
    expect(log.some((l) => /does not verify/.test(l))).toBe(true);
    expect(rebuilt.sha256).toBe(report.base.sha256); // same recipe, same backend: same weights
  }, 60_000);
});
