/**
 * Builds the browser client (`/join`) with esbuild: the page script, the Web Worker that runs the
 * client agent (the very files the Node agent runs), the page's HTML and tfjs' wasm binaries, into
 * `dist/web/`, which the coordinator serves. Node built-ins the bundled code imports are aliased to
 * the browser platform layer in client/platform/browser/ (one file per module), and `process` and
 * `Buffer` are injected; nothing else differs from the Node agent.
 *
 * `npm run build:web` (also run by `npm ci` through `prepare`); tests call {@link buildWebClient}.
 */
import { build } from 'esbuild';
import { copyFile, mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const platform = join(root, 'client', 'platform', 'browser');

/** Where the coordinator finds the built page (coordinator/http/join.ts reads the same path). */
export const WEB_DIST = join(root, 'dist', 'web');

/** Node built-ins -> their browser implementation. */
const ALIASES: Record<string, string> = {
  'node:crypto': join(platform, 'crypto.ts'),
  crypto: join(platform, 'crypto.ts'),
  'node:fs': join(platform, 'fs.ts'),
  fs: join(platform, 'fs.ts'),
  'node:fs/promises': join(platform, 'fs-promises.ts'),
  'node:path': createRequire(import.meta.url).resolve('pathe'),
  path: createRequire(import.meta.url).resolve('pathe'),
  'node:os': join(platform, 'os.ts'),
  os: join(platform, 'os.ts'),
  'node:module': join(platform, 'module.ts'),
  'node:zlib': join(platform, 'unavailable.ts'),
  'node:url': join(platform, 'unavailable.ts'),
  'node:child_process': join(platform, 'unavailable.ts'),
  'node:worker_threads': join(platform, 'unavailable.ts'),
  worker_threads: join(platform, 'unavailable.ts'),
  util: join(platform, 'unavailable.ts'),
  string_decoder: join(platform, 'unavailable.ts'),
  readline: join(platform, 'unavailable.ts'),
  events: join(platform, 'unavailable.ts'),
};

const WASM_FILES = ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm'];

/**
 * Bundles the page and its worker into `outDir`.
 * @param outDir @default WEB_DIST
 */
export async function buildWebClient(outDir = WEB_DIST): Promise<string> {
  await mkdir(join(outDir, 'wasm'), { recursive: true });
  await build({
    entryPoints: { 'join-page': join(here, 'page.ts'), 'join-worker': join(here, 'worker.ts') },
    outdir: outDir,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'chrome113',
    minify: true,
    sourcemap: false,
    alias: ALIASES,
    inject: [join(platform, 'process.ts')],
    define: { 'process.env.NODE_ENV': '"production"', global: 'globalThis' },
    logLevel: 'warning',
  });
  await copyFile(join(here, 'join.html'), join(outDir, 'join.html'));
  const wasmDir = dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
  for (const f of WASM_FILES) await copyFile(join(wasmDir, f), join(outDir, 'wasm', f));
  return outDir;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  buildWebClient().then(
    (dir) => console.log(`browser client built in ${dir}`),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
