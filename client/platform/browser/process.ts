/**
 * The `process` and `Buffer` globals of the browser client (injected by client/web/build.ts):
 * no environment; the `buffer` package's Buffer, taught the 'base64url' encoding Node has
 * (privacy/ed25519.ts writes JWK keys with it).
 */
import { Buffer } from 'buffer';

export const process = { env: {} as Record<string, string | undefined>, platform: 'browser', versions: {}, argv: [] as string[], cwd: () => '/', on: () => undefined, nextTick: (f: () => void) => queueMicrotask(f) };

type ToString = (this: Buffer, encoding?: string, start?: number, end?: number) => string;
const toString = Buffer.prototype.toString as ToString;
(Buffer.prototype as { toString: ToString }).toString = function (encoding?: string, start?: number, end?: number): string {
  if (encoding !== 'base64url') return toString.call(this, encoding, start, end);
  return toString.call(this, 'base64', start, end).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
};
const from = Buffer.from.bind(Buffer) as (value: unknown, encoding?: unknown, length?: unknown) => Buffer;
(Buffer as { from: unknown }).from = (value: unknown, encoding?: unknown, length?: unknown): Buffer =>
  encoding === 'base64url' && typeof value === 'string' ? from(value.replace(/-/g, '+').replace(/_/g, '/'), 'base64') : from(value, encoding, length);

export { Buffer };
