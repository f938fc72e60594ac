/**
 * `fedlora secagg simulate`: one secure aggregation round with every client in this process, to
 * try settings (degree, threshold, dropouts) before a job uses them.
 *   fedlora secagg simulate --clients N --length L [--degree K] [--threshold T] [--dropout RATE]
 *     [--step advertise|shareKeys|maskedInput|consistency|unmasking] [--clip-range C] [--quant-range Q] [--json]
 * Prints the settings, who dropped, the largest error against the plain float64 sum and the
 * bound, bytes per client and the time. A round that cannot recover fails with its coded error
 * (exit 1); bad arguments throw FL_ERR_INVALID_ARGUMENT (exit 2).
 */
import type { Command } from 'commander';
import { FedloraError } from '../../shared/errors.js';

function integer(option: string, raw: string | undefined, min: number): number | undefined {
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (!Number.isSafeInteger(v) || v < min) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--${option} must be an integer >= ${min}, got ${JSON.stringify(raw)}`, { option });
  return v;
}

function number(option: string, raw: string | undefined, ok: (v: number) => boolean, rule: string): number | undefined {
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v) || !ok(v)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--${option} must be ${rule}, got ${JSON.stringify(raw)}`, { option });
  return v;
}

const STEPS = ['advertise', 'shareKeys', 'maskedInput', 'consistency', 'unmasking'] as const;

interface SimulateOptions {
  clients?: string;
  length?: string;
  degree?: string;
  threshold?: string;
  dropout?: string;
  step?: string;
  clipRange?: string;
  quantRange?: string;
  json?: boolean;
}

export function register(program: Command): void {
  const secagg = program.command('secagg').description('secure aggregation (SecAgg+) tools');
  secagg
    .command('simulate')
    .description('run one secure aggregation round in process and check it against the plain sum')
    .option('--clients <n>', 'clients in the round', '20')
    .option('--length <l>', 'values per client', '10000')
    .option('--degree <k>', 'neighbours per client (default: 2 ceil(1.5 log2 n))')
    .option('--threshold <t>', 'shares needed to rebuild a secret (default: floor(k/2) + 1)')
    .option('--dropout <rate>', 'fraction of clients that drop out', '0')
    .option('--step <step>', `the step they drop at: ${STEPS.join(', ')}`, 'maskedInput')
    .option('--clip-range <c>', 'values are clipped to [-c, c]', '8')
    .option('--quant-range <q>', 'quantisation levels', String(2 ** 22))
    .option('--json', 'print JSON')
    .action(async (o: SimulateOptions) => {
      const n = integer('clients', o.clients, 2)!;
      const length = integer('length', o.length, 1)!;
      const rate = number('dropout', o.dropout, (v) => v >= 0 && v < 1, 'a fraction in [0, 1)')!;
      const step = o.step as (typeof STEPS)[number];
      if (!STEPS.includes(step)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `--step must be one of ${STEPS.join(', ')}, got ${JSON.stringify(o.step)}`, { option: 'step' });
      const { secAggConfig } = await import('./config.js');
      const { runInProcess } = await import('./in-process.js');
      const { randomBytes } = await import('node:crypto');
      const clients = Array.from({ length: n }, (_, i) => `client-${i}`);
      const config = secAggConfig({
        context: 'simulate',
        clients,
        vectorLength: length,
        graphSeed: randomBytes(16).toString('hex'),
        degree: integer('degree', o.degree, 1),
        threshold: integer('threshold', o.threshold, 1),
        clipRange: number('clip-range', o.clipRange, (v) => v > 0, 'a number > 0'),
        quantRange: integer('quant-range', o.quantRange, 1),
      });
      const inputs = new Map(clients.map((c) => [c, Float64Array.from(randomBytes(length), (b) => (b / 255 - 0.5) * 0.02)]));
      const dropped = clients.slice(0, Math.round(rate * n));
      const t0 = performance.now();
      const { result, bytesSent } = runInProcess(config, inputs, { [step]: dropped });
      const seconds = (performance.now() - t0) / 1000;
      let maxError = 0;
      for (let i = 0; i < length; i++) {
        let exact = 0;
        for (const c of result.survivors) exact += inputs.get(c)![i]!;
        maxError = Math.max(maxError, Math.abs(result.sum[i]! - exact));
      }
      const summary = {
        clients: n,
        length,
        degree: config.degree,
        threshold: config.threshold,
        survivors: result.survivors.length,
        dropped: result.dropped,
        badShares: result.badShares.length,
        maxError,
        errorBound: result.errorBound,
        bytesSentPerClient: [...bytesSent.values()].reduce((s, b) => s + b, 0) / n,
        seconds,
      };
      if (o.json === true) console.log(JSON.stringify(summary));
      else {
        console.log(`secure aggregation of ${n} clients x ${length} values: degree ${config.degree}, threshold ${config.threshold}`);
        console.log(`dropped at ${step}: ${dropped.length}; survivors in the sum: ${result.survivors.length}`);
        console.log(`max |secure - plain| = ${maxError.toExponential(3)} (bound ${result.errorBound.toExponential(3)})`);
        console.log(`bytes sent per client: ${summary.bytesSentPerClient.toFixed(0)}; ${seconds.toFixed(2)} s for the whole round`);
      }
    });
}
