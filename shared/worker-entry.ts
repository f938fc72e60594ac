/**
 * The URL a worker thread is started from, given its TypeScript entry file.
 *
 * - From the sources (tsx, vitest): a Node 20 worker cannot load TypeScript by itself, so the
 *   worker starts from a data: URL module that registers tsx's loader and then imports the entry.
 * - From a bundle (tools/gpu/pack.sh bundles the CLI with esbuild, each worker entry beside it as
 *   `<name>.mjs`): `new URL('./x.ts', import.meta.url)` then points into the bundle's folder, where
 *   `x.mjs` is plain JavaScript that a worker loads as it is.
 *
 * One function for the three workers (the agent's training worker, the coordinator's update
 * opener, the simulation's client pool).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** @param entry the worker's `.ts` entry, as `new URL('./name.ts', import.meta.url)` */
export function workerEntryUrl(entry: URL): URL {
  const path = fileURLToPath(entry);
  const bundled = path.replace(/\.ts$/, '.mjs');
  if (bundled !== path && !existsSync(path) && existsSync(bundled)) return pathToFileURL(bundled);
  const tsxDir = dirname(createRequire(import.meta.url).resolve('tsx/package.json'));
  const api = pathToFileURL(join(tsxDir, 'dist/esm/api/index.mjs')).href;
  const code = `import { register } from ${JSON.stringify(api)}; register(); await import(${JSON.stringify(entry.href)});`;
  return new URL(`data:text/javascript,${encodeURIComponent(code)}`);
}
