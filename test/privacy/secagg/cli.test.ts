/** `fedlora secagg simulate` through commander (bin/cli.ts does not register it yet). */
import { describe, it, expect, vi, afterEach } from 'vitest';
import { Command } from 'commander';
import { register } from '../../../privacy/secagg/cli.js';
import { isFedloraError } from '../../../shared/errors.js';

async function runCli(args: string[]): Promise<string> {
  const program = new Command().exitOverride();
  register(program);
  const lines: string[] = [];
  const spy = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.join(' ')));
  try {
    await program.parseAsync(['node', 'fedlora', ...args]);
  } finally {
    spy.mockRestore();
  }
  return lines.join('\n');
}

afterEach(() => vi.restoreAllMocks());

describe('fedlora secagg simulate', () => {
  it('reports a round with dropouts whose error is within the bound', async () => {
    const out = JSON.parse(await runCli(['secagg', 'simulate', '--clients', '12', '--length', '300', '--dropout', '0.25', '--json'])) as Record<string, unknown>;
    expect(out).toMatchObject({ clients: 12, length: 300, degree: 11, threshold: 6, survivors: 9, badShares: 0 });
    expect(out.maxError as number).toBeLessThan(out.errorBound as number);
  });

  it('beyond the threshold the round fails with FL_ERR_SECAGG_DROPOUTS; bad arguments with FL_ERR_INVALID_ARGUMENT', async () => {
    await expect(runCli(['secagg', 'simulate', '--clients', '10', '--length', '10', '--dropout', '0.5'])).rejects.toSatisfy((e) => isFedloraError(e, 'FL_ERR_SECAGG_DROPOUTS'));
    await expect(runCli(['secagg', 'simulate', '--clients', '1'])).rejects.toSatisfy((e) => isFedloraError(e, 'FL_ERR_INVALID_ARGUMENT') && /--clients must be an integer >= 2/.test(String(e)));
    await expect(runCli(['secagg', 'simulate', '--step', 'later'])).rejects.toSatisfy((e) => isFedloraError(e, 'FL_ERR_INVALID_ARGUMENT') && /--step must be one of/.test(String(e)));
  });
});
