/** Learning-rate schedules: constant, or linear warmup then cosine or linear decay. */
import { FedloraError } from '../../shared/errors.js';

export type ScheduleKind = 'constant' | 'cosine' | 'linear';

export interface ScheduleOptions {
  /** Peak learning rate. */
  readonly lr: number;
  /** @default 'constant' */
  readonly kind?: ScheduleKind;
  /** Steps of linear warmup from 0 to lr. @default 0 */
  readonly warmupSteps?: number;
  /** Total optimizer steps (needed by the decays). */
  readonly totalSteps: number;
  /** The decays end at lr * minRatio. @default 0 */
  readonly minRatio?: number;
}

/** Checks the options once. @throws FL_ERR_INVALID_ARGUMENT naming the field */
export function checkSchedule(o: ScheduleOptions): void {
  if (!(o.lr > 0) || !Number.isFinite(o.lr)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `learning rate must be a positive number, got ${o.lr}`);
  if (!Number.isInteger(o.totalSteps) || o.totalSteps < 0) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `totalSteps must be an integer >= 0, got ${o.totalSteps}`);
  const w = o.warmupSteps ?? 0;
  if (!Number.isInteger(w) || w < 0) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `warmupSteps must be an integer >= 0, got ${w}`);
  const r = o.minRatio ?? 0;
  if (!(r >= 0 && r <= 1)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `minRatio must be in [0, 1], got ${r}`);
  if (!['constant', 'cosine', 'linear'].includes(o.kind ?? 'constant')) {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `schedule must be constant, cosine or linear, got '${String(o.kind)}'`);
  }
}

/**
 * The learning rate of optimizer step `step` (0-based): warmup lr (step + 1) / warmupSteps, then
 * constant, or decay over the remaining steps to lr * minRatio (cosine: the half cosine of
 * transformers' get_cosine_schedule_with_warmup; linear: a straight line).
 */
export function learningRateAt(step: number, o: ScheduleOptions): number {
  const warmup = o.warmupSteps ?? 0;
  if (step < warmup) return (o.lr * (step + 1)) / warmup;
  const kind = o.kind ?? 'constant';
  if (kind === 'constant') return o.lr;
  const decaySteps = Math.max(1, o.totalSteps - warmup);
  const progress = Math.min(1, (step - warmup) / decaySteps);
  const minLr = o.lr * (o.minRatio ?? 0);
  const shape = kind === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * progress)) : 1 - progress;
  return minLr + (o.lr - minLr) * shape;
}
