/**
 * Issue 12 item 6: `fedlora sim --strategy all` on a two-class CSV, whose head [2, hidden] is
 * smaller than the rank. Every strategy runs with the head's rank capped at min(m, n) = 2, which
 * the log, report.json and report.html say; and a strategy that fails shows as failed with its
 * message (never with the base model's accuracy) while the others keep their results.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runSim } from '../../simulations/run-sim.js';
import { simOptions, summaryTable } from '../../simulations/cli.js';
import { renderReportHtml } from '../../simulations/report-html.js';
import { SimReportSchema, type SimReport } from '../../simulations/report.js';
import { SeededRandom } from '../../client/data/seeded-random.js';

const CAP = "module 'head' [2, 8]: rank 4 capped at min(m, n) = 2 (same scaling alpha / rank)";

describe('fedlora sim --strategy all on a two-class CSV (head [2, 8], rank 4)', () => {
  let report: SimReport;
  let out: string;
  const lines: string[] = [];

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedlora-small-head-'));
    const rng = new SeededRandom(12);
    const rows = ['a,b,c,d,e,f,label'];
    for (let i = 0; i < 120; i++) {
      const label = i % 2;
      rows.push(`${[0, 1, 2, 3, 4, 5].map((j) => (j === label ? 2 : 0) + rng.nextFloat() - 0.5).map((v) => v.toFixed(4)).join(',')},${label}`);
    }
    const file = join(dir, 'two.csv');
    writeFileSync(file, `${rows.join('\n')}\n`);
    out = join(dir, 'out');
    const options = simOptions({ data: file, clients: 3, rounds: 2, strategy: 'all', rank: '4', seed: 4, out, hidden: '8', pretrainEpochs: 20, partition: 'iid', workers: 2 }, (l) => lines.push(l));
    ({ report } = await runSim(options));
  }, 240_000);

  it('runs every strategy to the end with the head capped at rank 2, and says so in the log and report.json', () => {
    const json = SimReportSchema.parse(JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')));
    for (const name of ['fedavg', 'flora', 'ffa', 'fedsb']) {
      const s = json.strategies[name]!;
      expect(s.status, `${name}: ${s.reason ?? ''}`).toBe('completed');
      expect(s.rounds).toHaveLength(2);
      expect(s.notes).toEqual([CAP]);
      expect(lines).toContain(`[${name}] ${CAP}`);
    }
    expect(renderReportHtml(report)).toContain(CAP);
  });

  it('a failed strategy shows as failed with its message in the table and report.html, not with the base accuracy', () => {
    const failed: SimReport = {
      ...report,
      strategies: { ...report.strategies, fedsb: { ...report.strategies.fedsb!, status: 'failed', reason: 'FL_ERR_X: the job could not start', final: {}, rounds: [] } },
    };
    const table = summaryTable(failed);
    const row = table.split('\n').find((l) => l.startsWith('fedsb'))!;
    expect(row).toContain('FAILED');
    expect(row).not.toContain(`${(100 * report.base.accuracy!).toFixed(1)}%`);
    expect(table).toContain('fedsb: FAILED: FL_ERR_X: the job could not start');
    expect(table.split('\n').find((l) => l.startsWith('fedavg'))).toContain(`${(100 * report.strategies.fedavg!.final.accuracy!).toFixed(1)}%`);
    expect(renderReportHtml(failed)).toContain('<strong>failed</strong>: FL_ERR_X: the job could not start');
    expect(SimReportSchema.parse(JSON.parse(JSON.stringify(failed))).strategies.fedsb!.final).toEqual({});
  });
});
