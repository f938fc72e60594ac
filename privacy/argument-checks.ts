/**
 * Argument checks shared by the privacy mechanisms. Each failure is an FL_ERR_PRIVACY_ARGUMENT
 * whose message names the parameter, the rule and the value (docs/architecture.md, "Conventions"), and the config
 * field when the caller passes one: "clipNorm must be > 0, got -1 (privacy.clipNorm)".
 */
import { FedloraError } from '../shared/errors.js';

function fail(name: string, rule: string, value: unknown, field?: string): never {
  const where = field === undefined ? '' : ` (${field})`;
  throw new FedloraError('FL_ERR_PRIVACY_ARGUMENT', `${name} must be ${rule}, got ${String(value)}${where}`, {
    parameter: name,
    value,
    ...(field === undefined ? {} : { field }),
  });
}

/**
 * Requires a finite number > 0.
 * @param name the parameter as the caller's API spells it
 * @param field the configuration path it came from, when there is one
 */
export function requirePositive(value: number, name: string, field?: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) fail(name, 'a finite number > 0', value, field);
}

/** Requires a finite number >= 0. */
export function requireNonNegative(value: number, name: string, field?: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) fail(name, 'a finite number >= 0', value, field);
}

/** Requires a probability in (0, 1]: a sampling rate. */
export function requireRate(value: number, name: string, field?: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > 1) fail(name, 'in (0, 1]', value, field);
}

/** Requires a number in the open interval (0, 1). */
export function requireOpenUnit(value: number, name: string, field?: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value >= 1) fail(name, 'in (0, 1)', value, field);
}

/** Requires a non-negative integer (a count or a length). */
export function requireCount(value: number, name: string, field?: string): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) fail(name, 'an integer >= 0', value, field);
}

/** Fails with the project's privacy-argument error for a rule the helpers above do not cover. */
export function privacyArgumentError(name: string, rule: string, value: unknown, field?: string): never {
  return fail(name, rule, value, field);
}
