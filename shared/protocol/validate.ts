/**
 * Turning a zod failure into one coded FedloraError whose message names the field and the rule
 * (docs/architecture.md, "Conventions"), e.g. `job spec: rounds: Too small: expected number to be >=1`.
 */
import type { z } from 'zod';
import { FedloraError, type ErrorCode } from '../errors.js';

/** A field path as users write it: `model.targetModules[0]`; `(root)` for the whole value. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out === '' ? '(root)' : out;
}

/** One line per zod issue, `field: message`, first issue first. */
export function describeIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => `${fieldPath(issue.path)}: ${issue.message}`);
}

/**
 * Parses `value` with `schema` or throws FedloraError(code) naming every failing field.
 * @param what names the thing being parsed in the message ("job spec", "hello message")
 * @param code the error code. @default 'FL_ERR_INVALID_CONFIG'
 */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, what: string, code: ErrorCode = 'FL_ERR_INVALID_CONFIG'): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const lines = describeIssues(result.error);
  const first = result.error.issues[0];
  throw new FedloraError(code, `${what}: ${lines.join('; ')}`, { field: first === undefined ? '(root)' : fieldPath(first.path), issues: lines });
}
