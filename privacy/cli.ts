/**
 * `fedlora privacy ...`: the accountant from the command line.
 *   fedlora privacy epsilon --q Q --sigma S --steps T --delta D [--json] [--classic] [--series signed|absolute]
 *   fedlora privacy sigma   --q Q --steps T --delta D --epsilon E [--json] [--classic] [--series signed|absolute]
 * Bad arguments throw FL_ERR_PRIVACY_ARGUMENT naming the option and the rule (exit status 2).
 * The accountant is pure arithmetic, so nothing heavy is imported.
 */
import type { Command } from 'commander';
import { FedloraError } from '../shared/errors.js';
import { epsilonOfSampledGaussian } from './accountant.js';
import { smallestSigma } from './calibration.js';
import type { Conversion } from './conversion.js';
import type { FractionalSeries } from './rdp.js';

function argumentError(option: string, rule: string, raw: unknown): never {
  throw new FedloraError('FL_ERR_PRIVACY_ARGUMENT', `--${option} must be ${rule}, got ${JSON.stringify(raw)}`, { option, value: raw });
}

/** A decimal number from the command line: the whole string must be a finite number. */
function parseNumber(option: string, raw: unknown): number {
  if (typeof raw !== 'string' || raw.trim() === '') argumentError(option, 'a number', raw);
  const value = Number(raw);
  if (!Number.isFinite(value)) argumentError(option, 'a finite number', raw);
  return value;
}

function parseQ(raw: unknown): number {
  const q = parseNumber('q', raw);
  if (!(q > 0 && q <= 1)) argumentError('q', 'a sampling rate in (0, 1]', raw);
  return q;
}

function parseSigma(raw: unknown): number {
  const sigma = parseNumber('sigma', raw);
  if (!(sigma > 0)) argumentError('sigma', 'a noise multiplier > 0', raw);
  return sigma;
}

function parseDelta(raw: unknown): number {
  const delta = parseNumber('delta', raw);
  if (!(delta > 0 && delta < 1)) argumentError('delta', 'in (0, 1)', raw);
  return delta;
}

function parseSteps(raw: unknown): number {
  const steps = parseNumber('steps', raw);
  if (!Number.isSafeInteger(steps) || steps < 1) argumentError('steps', 'a positive integer', raw);
  return steps;
}

function parseEpsilon(raw: unknown): number {
  const epsilon = parseNumber('epsilon', raw);
  if (!(epsilon > 0)) argumentError('epsilon', 'a number > 0', raw);
  return epsilon;
}

interface CommonOptions {
  q?: string;
  steps?: string;
  delta?: string;
  json?: boolean;
  classic?: boolean;
  series?: string;
}

const conversionOf = (o: CommonOptions): Conversion => (o.classic === true ? 'classic' : 'improved');

function seriesOf(o: CommonOptions): FractionalSeries {
  const s = o.series ?? 'signed';
  if (s !== 'signed' && s !== 'absolute') argumentError('series', '"signed" or "absolute"', s);
  return s;
}

const SERIES_HELP =
  'fractional-order series: "signed" (exact, Mironov et al. 2019; TF Privacy, Opacus) or "absolute" (the upper bound dp_accounting sums since 2024)';

/** Registers `fedlora privacy epsilon` and `fedlora privacy sigma`. */
export function register(program: Command): void {
  const privacy = program
    .command('privacy')
    .description('Differential privacy accounting: RDP of the Poisson-subsampled Gaussian mechanism (docs/privacy-accounting.md)');

  privacy
    .command('epsilon')
    .description('epsilon of DP-SGD / DP-FedAvg after T steps at sampling rate q and noise multiplier sigma, and its optimal RDP order')
    .requiredOption('--q <q>', 'sampling rate in (0, 1]: batch / examples, or clients per round / clients')
    .requiredOption('--sigma <sigma>', 'noise multiplier > 0 (noise std / clipping norm)')
    .requiredOption('--steps <steps>', 'number of steps, a positive integer (local steps x rounds, or rounds)')
    .requiredOption('--delta <delta>', 'target delta in (0, 1)')
    .option('--json', 'print {"epsilon": ..., "order": ...}')
    .option('--classic', 'use the classic conversion (Mironov 2017, Prop. 3) instead of Balle et al. 2020, Thm. 21')
    .option('--series <series>', SERIES_HELP, 'signed')
    .action((o: CommonOptions & { sigma?: string }) => {
      const q = parseQ(o.q);
      const sigma = parseSigma(o.sigma);
      const steps = parseSteps(o.steps);
      const delta = parseDelta(o.delta);
      const conversion = conversionOf(o);
      const fractionalSeries = seriesOf(o);
      const { epsilon, order } = epsilonOfSampledGaussian(q, sigma, steps, delta, { conversion, fractionalSeries });
      if (o.json === true) {
        process.stdout.write(`${JSON.stringify({ epsilon, order })}\n`);
      } else {
        process.stdout.write(`epsilon = ${epsilon} at RDP order ${order} (q = ${q}, sigma = ${sigma}, steps = ${steps}, delta = ${delta}, ${conversion} conversion)\n`);
      }
    });

  privacy
    .command('sigma')
    .description('the smallest noise multiplier whose epsilon after T steps at sampling rate q is at most the target')
    .requiredOption('--q <q>', 'sampling rate in (0, 1]')
    .requiredOption('--steps <steps>', 'number of steps, a positive integer')
    .requiredOption('--delta <delta>', 'target delta in (0, 1)')
    .requiredOption('--epsilon <epsilon>', 'target epsilon > 0')
    .option('--json', 'print {"sigma": ...}')
    .option('--classic', 'use the classic conversion (Mironov 2017, Prop. 3)')
    .option('--series <series>', SERIES_HELP, 'signed')
    .action((o: CommonOptions & { epsilon?: string }) => {
      const q = parseQ(o.q);
      const steps = parseSteps(o.steps);
      const delta = parseDelta(o.delta);
      const target = parseEpsilon(o.epsilon);
      const conversion = conversionOf(o);
      const fractionalSeries = seriesOf(o);
      const r = smallestSigma({ q, steps, delta, epsilon: target, conversion, fractionalSeries });
      if (o.json === true) {
        process.stdout.write(`${JSON.stringify({ sigma: r.sigma })}\n`);
      } else {
        process.stdout.write(
          `sigma = ${r.sigma} gives epsilon = ${r.epsilon} <= ${target} at RDP order ${r.order} (q = ${q}, steps = ${steps}, delta = ${delta}, ${conversion} conversion; ${r.sigmaBelow} misses the target)\n`,
        );
      }
    });
}
