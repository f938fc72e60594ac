/**
 * A tiny real simulation end to end (real coordinator, SQLite file, agents in worker threads on
 * the wasm backend, sealed updates): the report follows its schema, its numbers agree with the
 * coordinator's own records, and the HTML page holds the charts.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runSim, analyticBytes } from '../../simulations/run-sim.js';
import { simOptions } from '../../simulations/cli.js';
import { SimReportSchema, type SimReport } from '../../simulations/report.js';

const REQUIRED_STRATEGY_KEYS = ['final', 'rounds', 'bytesUpPerClientRound', 'bytesDownPerClientRound', 'epsilon', 'wallSeconds'];

describe('fedlora sim on digits (3 clients, 2 rounds, tiny mlp, fedavg)', () => {
  let report: SimReport;
  let out: string;
  const lines: string[] = [];

  beforeAll(async () => {
    out = mkdtempSync(join(tmpdir(), 'fedlora-sim-test-'));
    const options = simOptions(
      { data: 'digits', clients: 3, rounds: 2, strategy: 'fedavg', seed: 3, out, hidden: '8', pretrainEpochs: 3, partition: 'dirichlet', alpha: 1, workers: 2 },
      (l) => lines.push(l),
    );
    ({ report } = await runSim(options));
  }, 120_000);

  it('writes report.json that parses with the schema and keeps the keys outside scripts read', () => {
    const json = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as Record<string, unknown>;
    const parsed = SimReportSchema.parse(json);
    const s = (json.strategies as Record<string, Record<string, unknown>>).fedavg!;
    for (const k of REQUIRED_STRATEGY_KEYS) expect(s).toHaveProperty(k);
    expect(Object.keys(s.final as object).sort()).toEqual(['accuracy', 'loss']);
    expect(parsed.strategies.fedavg!.status).toBe('completed');
  });

  it('has one row per round with every client, a test accuracy and bytes, as the progress lines said', () => {
    const s = report.strategies.fedavg!;
    expect(s.rounds.map((r) => r.round)).toEqual([0, 1]);
    for (const r of s.rounds) {
      expect(r.participants).toBe(3);
      expect(r.accuracy).toBeGreaterThanOrEqual(0);
      expect(r.accuracy).toBeLessThanOrEqual(1);
      expect(r.trainLoss).toBeGreaterThan(0);
      expect(r.aggregationNoise).not.toBeNull();
    }
    expect(s.final.accuracy).toBe(s.rounds[1]!.accuracy);
    expect(lines.filter((l) => /^\[fedavg\] round \d\/2 {2}clients 3/.test(l))).toHaveLength(2);
    expect(s.epsilon).toBeNull();
  });

  it('measures bytes above the analytic float32 payload (the envelope adds a header, nonce, MAC and signature) but within 2 kB of it', () => {
    const s = report.strategies.fedavg!;
    // digits mlp [8]: modules layers.0 [8, 64] and head [10, 8]; rank 4: (8+64)*4 + (10+8)*4 = 360 floats = 1440 bytes
    const a = analyticBytes('fedavg', [{ outFeatures: 8, inFeatures: 64 }, { outFeatures: 10, inFeatures: 8 }], 4, 3);
    expect(a.up).toBe(1440);
    expect(s.analytic.bytesUpPerClientRound).toBe(1440);
    expect(s.bytesUpPerClientRound).toBeGreaterThan(1440);
    expect(s.bytesUpPerClientRound).toBeLessThan(1440 + 2048);
    expect(s.bytesDownPerClientRound).toBeGreaterThan(1440);
  });

  it('reports the data split and the partition it simulated', () => {
    expect(report.data.testRows + report.data.publicRows + report.data.federatedRows).toBe(1797);
    expect(report.data.clientRows.reduce((a, b) => a + b, 0)).toBe(report.data.federatedRows);
    expect(report.data.classCounts.map((c) => c.reduce((a, b) => a + b, 0))).toEqual(report.data.clientRows);
  });

  it('writes a self-contained report.html with inline SVG charts and no external resource', () => {
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html.match(/<svg /g)?.length).toBeGreaterThanOrEqual(4);
    expect(html).toContain('Test accuracy');
    expect(html).not.toMatch(/<script|https?:\/\/|<link /);
    expect(existsSync(join(out, 'coordinator', 'fedlora.db'))).toBe(true);
  });
});
