/**
 * `fedlora privacy epsilon|sigma`, registered on a fresh commander program in-process (the
 * end-to-end run through bin/fedlora.mjs is cli-binary.test.ts). Output is compared with the
 * library computed directly: the JSON must carry the same float64 values, bit for bit.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Command, CommanderError } from 'commander';
import { register } from '../../privacy/cli.js';
import { epsilonOfSampledGaussian } from '../../privacy/accountant.js';
import { smallestSigma } from '../../privacy/calibration.js';
import { FedloraError } from '../../shared/errors.js';

async function run(...args: string[]): Promise<string> {
  const program = new Command('fedlora').exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  register(program);
  let out = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  try {
    await program.parseAsync(['node', 'fedlora', 'privacy', ...args]);
  } finally {
    spy.mockRestore();
  }
  return out;
}

async function failure(...args: string[]): Promise<Error> {
  try {
    await run(...args);
  } catch (e) {
    return e as Error;
  }
  throw new Error(`expected privacy ${args.join(' ')} to fail`);
}

afterEach(() => vi.restoreAllMocks());

describe('fedlora privacy epsilon', () => {
  it('--json prints exactly {"epsilon", "order"} with the full float64 values', async () => {
    const out = await run('epsilon', '--q', '0.01', '--sigma', '4', '--steps', '10000', '--delta', '1e-5', '--json');
    const parsed = JSON.parse(out);
    expect(Object.keys(parsed)).toEqual(['epsilon', 'order']);
    expect(parsed).toEqual(epsilonOfSampledGaussian(0.01, 4, 10_000, 1e-5));
    expect(out.endsWith('}\n')).toBe(true);
  });

  it('--classic switches to Mironov 2017 Prop. 3 (Abadi et al.: 1.26)', async () => {
    const parsed = JSON.parse(await run('epsilon', '--q', '0.01', '--sigma', '4', '--steps', '10000', '--delta', '1e-5', '--json', '--classic'));
    expect(parsed).toEqual(epsilonOfSampledGaussian(0.01, 4, 10_000, 1e-5, { conversion: 'classic' }));
    expect(parsed.epsilon.toFixed(2)).toBe('1.26');
    expect(parsed.order).toBe(20);
  });

  it('--series absolute reproduces the dp_accounting bound (differs from the exact series here)', async () => {
    const args = ['epsilon', '--q', '0.1', '--sigma', '1', '--steps', '10000', '--delta', '1e-5', '--json'];
    const exact = JSON.parse(await run(...args));
    const bound = JSON.parse(await run(...args, '--series', 'absolute'));
    expect(exact).toEqual(epsilonOfSampledGaussian(0.1, 1, 10_000, 1e-5));
    expect(bound).toEqual(epsilonOfSampledGaussian(0.1, 1, 10_000, 1e-5, { fractionalSeries: 'absolute' }));
    expect(bound.epsilon).toBeGreaterThan(exact.epsilon);
    const e = await failure(...args, '--series', 'exact');
    expect(e.message).toContain('--series must be "signed" or "absolute", got "exact"');
  });

  it('prints a readable line without --json', async () => {
    const out = await run('epsilon', '--q', '0.004', '--sigma', '1.3', '--steps', '3750', '--delta', '1e-5');
    const { epsilon, order } = epsilonOfSampledGaussian(0.004, 1.3, 3750, 1e-5);
    expect(out).toBe(`epsilon = ${epsilon} at RDP order ${order} (q = 0.004, sigma = 1.3, steps = 3750, delta = 0.00001, improved conversion)\n`);
  });

  it.each([
    [['--q', '0', '--sigma', '1', '--steps', '10', '--delta', '1e-5'], '--q must be a sampling rate in (0, 1], got "0"'],
    [['--q', '1.5', '--sigma', '1', '--steps', '10', '--delta', '1e-5'], '--q must be a sampling rate in (0, 1]'],
    [['--q', 'abc', '--sigma', '1', '--steps', '10', '--delta', '1e-5'], '--q must be a finite number, got "abc"'],
    [['--q', '0.1', '--sigma', '0', '--steps', '10', '--delta', '1e-5'], '--sigma must be a noise multiplier > 0'],
    [['--q', '0.1', '--sigma', '-2', '--steps', '10', '--delta', '1e-5'], '--sigma must be a noise multiplier > 0'],
    [['--q', '0.1', '--sigma', '1', '--steps', '2.5', '--delta', '1e-5'], '--steps must be a positive integer, got "2.5"'],
    [['--q', '0.1', '--sigma', '1', '--steps', '0', '--delta', '1e-5'], '--steps must be a positive integer'],
    [['--q', '0.1', '--sigma', '1', '--steps', '10', '--delta', '1'], '--delta must be in (0, 1)'],
    [['--q', '0.1', '--sigma', '1', '--steps', '10', '--delta', '0'], '--delta must be in (0, 1)'],
    [['--q', '0.1', '--sigma', 'Infinity', '--steps', '10', '--delta', '1e-5'], '--sigma must be a finite number'],
    [['--q', ' ', '--sigma', '1', '--steps', '10', '--delta', '1e-5'], '--q must be a number'],
  ])('refuses %j with FL_ERR_PRIVACY_ARGUMENT', async (args, message) => {
    const e = await failure('epsilon', ...args);
    expect(e).toBeInstanceOf(FedloraError);
    expect((e as FedloraError).code).toBe('FL_ERR_PRIVACY_ARGUMENT');
    expect(e.message).toContain(message);
  });

  it('a missing option is a commander usage error', async () => {
    const e = await failure('epsilon', '--q', '0.1', '--sigma', '1', '--steps', '10');
    expect(e).toBeInstanceOf(CommanderError);
    expect(e.message).toContain('--delta');
  });
});

describe('fedlora privacy sigma', () => {
  it('--json prints exactly {"sigma"}, the calibrated smallest sigma', async () => {
    const out = await run('sigma', '--q', '0.01', '--steps', '10000', '--delta', '1e-5', '--epsilon', '1', '--json');
    const parsed = JSON.parse(out);
    expect(Object.keys(parsed)).toEqual(['sigma']);
    expect(parsed.sigma).toBe(smallestSigma({ q: 0.01, steps: 10_000, delta: 1e-5, epsilon: 1 }).sigma);
    expect(epsilonOfSampledGaussian(0.01, parsed.sigma, 10_000, 1e-5).epsilon).toBeLessThanOrEqual(1);
  });

  it('prints a readable line without --json', async () => {
    const out = await run('sigma', '--q', '0.5', '--steps', '20', '--delta', '1e-5', '--epsilon', '4');
    expect(out).toMatch(/^sigma = [0-9.]+ gives epsilon = [0-9.]+ <= 4 at RDP order [0-9.]+ \(q = 0\.5, steps = 20, delta = 0\.00001, improved conversion; [0-9.]+ misses the target\)\n$/);
  });

  it.each([
    [['--q', '0.1', '--steps', '10', '--delta', '1e-5', '--epsilon', '0'], '--epsilon must be a number > 0'],
    [['--q', '0.1', '--steps', '10', '--delta', '1e-5', '--epsilon', '-1'], '--epsilon must be a number > 0'],
    [['--q', '0.1', '--steps', '10', '--delta', '1e-5', '--epsilon', 'x'], '--epsilon must be a finite number'],
    [['--q', '0.1', '--steps', '1e1.5', '--delta', '1e-5', '--epsilon', '1'], '--steps must be a finite number'],
    [['--q', '2', '--steps', '10', '--delta', '1e-5', '--epsilon', '1'], '--q must be a sampling rate in (0, 1]'],
  ])('refuses %j with FL_ERR_PRIVACY_ARGUMENT', async (args, message) => {
    const e = await failure('sigma', ...args);
    expect((e as FedloraError).code).toBe('FL_ERR_PRIVACY_ARGUMENT');
    expect(e.message).toContain(message);
  });
});
