/**
 * The message bus (socket.io's PostgreSQL adapter) between two real socket.io servers on loopback
 * and a real PostgreSQL: an emit to a socket id from one node reaches the client connected to the
 * other, binary payloads over NOTIFY's 8000 bytes included; fetchSockets sees both nodes' sockets;
 * serverSideEmit reaches the other node and brings its acknowledgement back.
 */
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Server } from 'socket.io';
import { io as connect, type Socket as ClientSocket } from 'socket.io-client';
import { openClusterPool, type ClusterPool } from '../../../coordinator/cluster/cluster-pool.js';
import { ensureClusterTables } from '../../../coordinator/cluster/cluster-schema.js';
import { joinMessageBus } from '../../../coordinator/cluster/message-bus.js';
import { requirePostgres, TestSchemas } from '../store/postgres-server.js';

const schemas = new TestSchemas();
const pools: ClusterPool[] = [];
const servers: Array<{ io: Server; http: HttpServer }> = [];
const clients: ClientSocket[] = [];

async function node(location: string): Promise<{ io: Server; url: string }> {
  const cluster = openClusterPool(location);
  pools.push(cluster);
  await ensureClusterTables(cluster.pool, cluster.schema);
  const http = createServer();
  const io = new Server(http);
  joinMessageBus(io, cluster, { heartbeatMs: 200 });
  servers.push({ io, http });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return { io, url: `http://127.0.0.1:${(http.address() as AddressInfo).port}` };
}

async function client(url: string, name: string): Promise<ClientSocket> {
  const socket = connect(url, { transports: ['websocket'], forceNew: true, auth: { name } });
  clients.push(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  return socket;
}

/** Resolves once `io` has heard from `count` other nodes (the adapter learns of them by heartbeat). */
async function peers(io: Server, count: number): Promise<void> {
  while ((await io.of('/').adapter.serverCount()) < count + 1) await new Promise((r) => setTimeout(r, 50));
}

beforeAll(async () => {
  await requirePostgres();
});

afterAll(async () => {
  for (const c of clients) c.disconnect();
  for (const s of servers) await new Promise<void>((resolve) => s.io.close(() => resolve()));
  await Promise.all(pools.map((p) => p.pool.end()));
  await schemas.dropAll();
});

describe('joinMessageBus', () => {
  it("emits to a socket on the other node, lists every node's sockets and carries server-side acks", async () => {
    const location = schemas.fresh();
    const a = await node(location);
    const b = await node(location);
    a.io.on('connection', (s) => (s.data = { name: (s.handshake.auth as { name: string }).name }));
    b.io.on('connection', (s) => (s.data = { name: (s.handshake.auth as { name: string }).name }));
    b.io.on('ping-node', (n: number, ack: (answer: string) => void) => ack(`b got ${n}`));
    await peers(a.io, 1);
    await peers(b.io, 1);
    const onB = await client(b.url, 'client-on-b');
    await client(a.url, 'client-on-a');

    const all = await a.io.fetchSockets();
    expect(all.map((s) => (s.data as { name: string }).name).sort()).toEqual(['client-on-a', 'client-on-b']);

    // A binary payload bigger than NOTIFY's 8000-byte limit goes through the attachments table.
    const big = new Uint8Array(50_000).map((_, i) => i % 251);
    const received = new Promise<Uint8Array>((resolve) => onB.once('blob', (bytes: ArrayBuffer | Uint8Array) => resolve(new Uint8Array(bytes))));
    a.io.to(onB.id!).emit('blob', big);
    expect(Buffer.from(await received).equals(Buffer.from(big))).toBe(true);

    const answers = await a.io.serverSideEmitWithAck('ping-node', 7);
    expect(answers).toEqual(['b got 7']);
  });
});
