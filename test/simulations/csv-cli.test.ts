/**
 * A CSV with a header, numeric features and a `label` column runs with no other setup, through
 * the command line (a child process, as a user runs it), and `--json` prints the report.
 */
import { describe, it, expect } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SimReportSchema } from '../../simulations/report.js';
import { SeededRandom } from '../../client/data/seeded-random.js';

const run = promisify(execFile);

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, ['--import', 'tsx', 'simulations/main.ts', 'sim', ...args], { maxBuffer: 1 << 24 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

/** Three Gaussian blobs in 4 dimensions (seeded), 300 rows: an easy 3-class problem. */
function blobsCsv(file: string): void {
  const rng = new SeededRandom(1, 'blobs');
  const lines = ['a,b,c,d,label'];
  for (let i = 0; i < 300; i++) {
    const label = i % 3;
    const x = [0, 1, 2, 3].map((j) => (j === label ? 3 : 0) + (rng.nextFloat() - 0.5) * 2);
    lines.push(`${x.map((v) => v.toFixed(4)).join(',')},${label}`);
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
}

describe('fedlora sim --data FILE.csv', () => {
  it('pre-trains a base on the public part, federates the rest and prints report.json with --json', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedlora-sim-csv-'));
    const file = join(dir, 'blobs.csv');
    blobsCsv(file);
    const r = await cli(['--data', file, '--clients', '3', '--rounds', '1', '--strategy', 'ffa', '--partition', 'iid', '--hidden', '8', '--pretrain-epochs', '40', '--out', join(dir, 'out'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = SimReportSchema.parse(JSON.parse(r.stdout));
    expect(report.data.numLabels).toBe(3);
    expect(report.data.testRows).toBe(60);
    expect(report.strategies.ffa!.status).toBe('completed');
    // blobs 3 apart with noise in [-1, 1] are separable: the pre-trained base already gets most right
    expect(report.base.accuracy).toBeGreaterThan(0.8);
    expect(r.stderr).toContain('report: ');
  }, 120_000);

  it('refuses a text file, an unknown fortune category, more clients than categories and a bad option with coded errors (exit 2 for arguments)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedlora-sim-bad-'));
    const texts = join(dir, 'texts.jsonl');
    writeFileSync(texts, '{"text": "hello"}\n{"text": "world"}\n');
    const [a, b, c, d] = await Promise.all([
      cli(['--data', texts, '--out', join(dir, 'a')]),
      cli(['--data', 'fortunes', '--categories', 'food,nosuch', '--out', join(dir, 'b')]),
      cli(['--clients', '0']),
      cli(['--data', 'fortunes', '--categories', 'food,love', '--clients', '3', '--out', join(dir, 'd')]),
    ]);
    expect(a.code).toBe(1);
    expect(a.stderr).toMatch(/texts\.jsonl: fedlora sim trains an mlp on numeric features/);
    expect(b.code).toBe(2);
    expect(b.stderr).toContain("--categories: no fortune category 'nosuch'; known: art, computers");
    expect(d.code).toBe(2);
    expect(d.stderr).toContain('--clients 3: --partition category gives each client one fortune category, and --categories names 2');
    expect(c.code).toBe(2);
    expect(c.stderr).toContain("--clients must be an integer >= 1, got '0'");
  }, 60_000);
});
