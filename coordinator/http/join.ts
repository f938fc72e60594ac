/**
 * `/join`: the data owner's page (the browser client, issue 15). The page and its worker are
 * built from client/web/ by esbuild into dist/web/ (`npm run build:web`, run by `npm ci`); the
 * coordinator only serves those files, it never imports the client. The enrolment token travels in
 * the link's fragment (`/join#token=T`), so it never reaches this server or its logs.
 */
import express, { type Router } from 'express';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FedloraError } from '../../shared/errors.js';

/** Where client/web/build.ts writes the page. */
export const JOIN_PAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'web');

/**
 * The page's content security policy: its own scripts, WebAssembly (tfjs' wasm backend), its own
 * origin for the socket and the worker, inline styles of its one HTML file.
 */
const CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The routes of the join page, mounted at the app's root. @param dir @default JOIN_PAGE_DIR */
export function joinRoutes(dir = JOIN_PAGE_DIR): Router {
  const router = express.Router();
  router.use(['/join', '/join/*path'], (_req, res, next) => {
    res.setHeader('Content-Security-Policy', CSP);
    if (!existsSync(join(dir, 'join.html'))) {
      next(new FedloraError('FL_ERR_NOT_FOUND', `the browser client is not built (no ${join(dir, 'join.html')}): run 'npm run build:web'`));
      return;
    }
    next();
  });
  router.get('/join', (_req, res) => {
    res.sendFile(join(dir, 'join.html'));
  });
  router.use('/join', express.static(dir, { index: false, fallthrough: false }));
  return router;
}
