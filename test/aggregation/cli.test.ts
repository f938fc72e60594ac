/**
 * `fedlora aggregate` and `fedlora demo` through the real binary (`node bin/fedlora.mjs ...`), on
 * real PEFT adapter directories, checked against the float64 reference.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStrategy } from '../../aggregation/registry.js';
import type { ClientUpdate } from '../../aggregation/strategy.js';
import { readPeftAdapterDir, writePeftAdapterDir } from '../../shared/peft.js';
import { clientUpdate, denseDelta, float32Tolerance, moduleSpec, numpySvd, referenceSum, relativeDifference } from './fixtures.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));
const bin = fileURLToPath(new URL('../../bin/fedlora.mjs', import.meta.url));

async function fedlora(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [bin, ...args], { cwd: root });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

const modules = [moduleSpec('model.layers.0.self_attn.q_proj', 12, 10, 4, 8), moduleSpec('model.layers.0.self_attn.v_proj', 6, 10, 4, 8)];
let dir: string;

async function writeClients(name: string, updates: readonly ClientUpdate[]): Promise<string[]> {
  const dirs: string[] = [];
  for (const [i, u] of updates.entries()) {
    const d = join(dir, name, `client-${i}`);
    await writePeftAdapterDir(d, u.adapter, name === 'fedsb' ? { foldFedSb: false, includeFedSbR: true } : {});
    dirs.push(d);
  }
  return dirs;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedlora-aggregate-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('fedlora aggregate', () => {
  it.each(['flora', 'ffa', 'fedsb'] as const)('%s: writes a PEFT adapter whose s B A is the exact weighted sum', async (name) => {
    const strategy = createStrategy(name);
    const state = strategy.init({ modules }, 'cli');
    const updates = [clientUpdate(strategy, state, 'a', 3, name === 'flora' ? 2 : undefined), clientUpdate(strategy, state, 'b', 5), clientUpdate(strategy, state, 'c', 1, name === 'flora' ? 3 : undefined)];
    const dirs = await writeClients(name, updates);
    const out = join(dir, name, 'out');
    const r = await fedlora('aggregate', '--strategy', name, '--out', out, '--weights', '3,5,1', '--json', ...dirs);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ strategy: name, clients: 3, totalExamples: 9, out });
    const written = await readPeftAdapterDir(out);
    for (const m of modules) {
      expect(relativeDifference(denseDelta(written, m.path), referenceSum(updates, m.path))).toBeLessThanOrEqual(float32Tolerance(updates, m.path));
    }
    if (name === 'fedsb') expect(written.layout.variant).toBe('fedsb'); // R and the unfolded B came back
  });

  it('flora --compress-rank: writes the best rank-k adapter and reports its error (vs numpy)', async () => {
    const strategy = createStrategy('flora');
    const state = strategy.init({ modules }, 'cli');
    const updates = [clientUpdate(strategy, state, 'x', 2, 3), clientUpdate(strategy, state, 'y', 1, 4)];
    const dirs = await writeClients('flora-k', updates);
    const out = join(dir, 'flora-k', 'out');
    const r = await fedlora('aggregate', '--strategy', 'flora', '--compress-rank', '2', '--weights', '2,1', '--json', '--out', out, ...dirs);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { compressionError: number; ranks: Record<string, number> };
    expect(Object.values(report.ranks)).toEqual([2, 2]);
    const written = await readPeftAdapterDir(out);
    let dropped = 0;
    let total = 0;
    for (const m of modules) {
      const exact = referenceSum(updates, m.path);
      const ref = numpySvd(exact, m.outFeatures, m.inFeatures, 2);
      expect(relativeDifference(denseDelta(written, m.path), ref.best)).toBeLessThan(1e-5);
      ref.singular.forEach((v, i) => {
        total += v * v;
        if (i >= 2) dropped += v * v;
      });
    }
    expect(report.compressionError).toBeCloseTo(Math.sqrt(dropped / total), 6);
  });

  it('fedavg: averages factors and prints the aggregation noise', async () => {
    const strategy = createStrategy('fedavg');
    const state = strategy.init({ modules }, 'cli');
    const dirs = await writeClients('fedavg', [clientUpdate(strategy, state, 'a', 1), clientUpdate(strategy, state, 'b', 1, 2)]);
    const r = await fedlora('aggregate', '--strategy', 'fedavg', '--out', join(dir, 'fedavg', 'out'), ...dirs);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/fedavg: aggregated 2 client adapters \(2 examples\)/);
    expect(r.stdout).toMatch(/aggregation noise .*: \d\.\d+e[-+]\d+ \(exact\)/);
  });

  it('refuses a client whose frozen A differs, naming the directory and the tensor (exit 1)', async () => {
    const strategy = createStrategy('ffa');
    const good = clientUpdate(strategy, strategy.init({ modules }, 'seed-1'), 'a', 1);
    const other = clientUpdate(strategy, strategy.init({ modules }, 'seed-2'), 'b', 1);
    const dirs = await writeClients('ffa-bad', [good, other]);
    const r = await fedlora('aggregate', '--strategy', 'ffa', '--out', join(dir, 'ffa-bad', 'out'), ...dirs);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`FL_ERR_FROZEN_MISMATCH: ${dirs[1]}: base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight differs from the global frozen A`);
  });

  it('refuses mismatched module shapes, naming the directory and the tensor (exit 1)', async () => {
    const strategy = createStrategy('flora');
    const a = clientUpdate(strategy, strategy.init({ modules }, 's'), 'a', 1);
    const b = clientUpdate(strategy, strategy.init({ modules: [modules[0]!, moduleSpec(modules[1]!.path, 7, 10, 4, 8)] }, 's'), 'b', 1);
    const dirs = await writeClients('shapes', [a, b]);
    const r = await fedlora('aggregate', '--strategy', 'flora', '--out', join(dir, 'shapes', 'out'), ...dirs);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`FL_ERR_AGGREGATION_INPUT: ${dirs[1]}: module 'model.layers.0.self_attn.v_proj' is [7, 10] but the round's layout has [6, 10]`);
  });

  it('refuses an unknown strategy and bad weights with exit 2', async () => {
    const unknown = await fedlora('aggregate', '--strategy', 'fedprox', '--out', join(dir, 'x'), join(dir, 'nothing'));
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("FL_ERR_UNKNOWN_STRATEGY: no strategy 'fedprox'");
    const weights = await fedlora('aggregate', '--strategy', 'flora', '--weights', '1,x', '--out', join(dir, 'x'), join(dir, 'a'), join(dir, 'b'));
    expect(weights.code).toBe(2);
    expect(weights.stderr).toContain("--weights: value 2 ('x') must be a finite number > 0");
  });
});

describe('fedlora demo', () => {
  it('aggregates synthetic clients with every strategy: flora, ffa and fedsb exact, fedavg not', async () => {
    const r = await fedlora('demo', '--out', join(dir, 'demo'), '--json');
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout) as { rows: Array<{ strategy: string; exact: boolean; relativeError: number }> };
    const byName = Object.fromEntries(result.rows.map((row) => [row.strategy, row]));
    // Dense float64 check of float32 factors: ~1e-8 measured; 1e-6 leaves room for any seed.
    for (const name of ['flora', 'ffa', 'fedsb']) expect(byName[name]!.relativeError).toBeLessThan(1e-6);
    expect(byName.fedavg!.relativeError).toBeGreaterThan(0.01);
  });
});
