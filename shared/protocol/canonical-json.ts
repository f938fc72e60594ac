/**
 * Canonical JSON: object keys sorted, no whitespace, `undefined` members left out (as
 * JSON.stringify does). Two parties that hold the same JSON value, one as the object it built and
 * the other as what `JSON.parse` gave back, get the same string, so it can be hashed and signed.
 * Numbers use JavaScript's shortest round-trip form (both ends run it); non-finite numbers are
 * refused, since JSON would turn them into null.
 */
import { FedloraError } from '../errors.js';

export function canonicalJson(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'number':
      if (!Number.isFinite(value)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `canonicalJson: ${value} has no JSON form`);
      return JSON.stringify(value);
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
      const entries = Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
    }
    default:
      throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `canonicalJson: a ${typeof value} has no JSON form`);
  }
}
