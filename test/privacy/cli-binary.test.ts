/**
 * `fedlora privacy ...` end to end through the real binary (bin/fedlora.mjs -> bin/cli.ts, which
 * registers privacy/cli.ts): stdout, stderr and the exit status a user sees.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { epsilonOfSampledGaussian } from '../../privacy/accountant.js';
import { smallestSigma } from '../../privacy/calibration.js';

const bin = fileURLToPath(new URL('../../bin/fedlora.mjs', import.meta.url));

function fedlora(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe('fedlora privacy (the real binary)', () => {
  it('epsilon --json prints the accountant figure and exits 0', async () => {
    const r = await fedlora('privacy', 'epsilon', '--q', '0.01', '--sigma', '4', '--steps', '10000', '--delta', '1e-5', '--json');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(epsilonOfSampledGaussian(0.01, 4, 10_000, 1e-5));
  });

  it('sigma --json prints the calibrated sigma and exits 0', async () => {
    const r = await fedlora('privacy', 'sigma', '--q', '0.01', '--steps', '1000', '--delta', '1e-5', '--epsilon', '2', '--json');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ sigma: smallestSigma({ q: 0.01, steps: 1000, delta: 1e-5, epsilon: 2 }).sigma });
  });

  it('a bad argument exits 2 with the option and the rule on stderr', async () => {
    const r = await fedlora('privacy', 'epsilon', '--q', '1.5', '--sigma', '1', '--steps', '10', '--delta', '1e-5');
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('FL_ERR_PRIVACY_ARGUMENT: --q must be a sampling rate in (0, 1], got "1.5"');
  });

  it('non-integer steps and a missing option exit 2', async () => {
    const steps = await fedlora('privacy', 'sigma', '--q', '0.1', '--steps', '2.5', '--delta', '1e-5', '--epsilon', '1');
    expect(steps.status).toBe(2);
    expect(steps.stderr).toContain('--steps must be a positive integer');
    const missing = await fedlora('privacy', 'epsilon', '--q', '0.1', '--sigma', '1', '--steps', '10');
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('--delta');
  });
});
