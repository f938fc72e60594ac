/**
 * Child process of bench/rounds.bench.ts (not a benchmark itself: run.ts only runs *.bench.ts).
 *   tsx bench/rounds-server.ts coordinator <db> <adminToken>   a real coordinator (Coordinator.start)
 *   tsx bench/rounds-server.ts echo                             a bare socket.io server that acks every
 *                                                              `update` at once: the baseline
 * Prints `listening <url>`, then answers the parent's IPC message `mem` with its memory after a GC
 * (run it with --expose-gc), so the coordinator's memory is measured apart from the clients'.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import { Coordinator } from '../coordinator/coordinator.js';
import { SOCKET_NAMESPACE, SOCKET_PATH } from '../shared/protocol/events.js';

const [mode, db, adminToken] = process.argv.slice(2);

if (mode === 'coordinator') {
  const coordinator = await Coordinator.start({
    db: db!,
    port: 0,
    adminToken: adminToken!,
    logLevel: 'silent',
    http: { rateLimit: 1_000_000 },
    socket: { authTimeoutMs: 600_000 },
    engine: { startGraceMs: 600_000 },
  });
  process.stdout.write(`listening ${coordinator.url}\n`);
} else {
  const http = createServer();
  const io = new Server(http, { path: SOCKET_PATH, serveClient: false, maxHttpBufferSize: 256 * 2 ** 20 });
  io.of(SOCKET_NAMESPACE).on('connection', (socket) => {
    socket.on('update', (_update: unknown, ack: (a: unknown) => void) => ack({ ok: true }));
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  process.stdout.write(`listening http://127.0.0.1:${(http.address() as AddressInfo).port}\n`);
}

process.on('message', (m) => {
  if (m !== 'mem') return;
  (globalThis as { gc?: () => void }).gc?.();
  const u = process.memoryUsage();
  process.send?.({ rss: u.rss, heapUsed: u.heapUsed, external: u.external, arrayBuffers: u.arrayBuffers });
});
