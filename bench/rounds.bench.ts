/**
 * `npm run bench rounds`: federated rounds with 10, 100 and 1,000 connected light clients (issue 5,
 * "Benchmark"). The coordinator runs in a child process (bench/rounds-server.ts) so its memory is
 * its own; the light clients live in this process, enrol and authenticate for real (Ed25519 keys,
 * challenge), and answer each offer with a prepared update (no training): a safetensors payload of
 * the planned tensors, sealed and signed for the round with privacy/envelope.ts.
 *
 * Per configuration and round:
 *  - ingestion: every client's envelope is sealed first, then all are sent at once; MB/s = bytes
 *    of envelopes / (first send -> last ack), so it covers transport, opening (signature, binding,
 *    replay, decryption) and validation (names, shapes, dtype, finite values) and the streaming sum;
 *  - overhead: last ack -> first offer of the next round, as a client sees it (aggregation,
 *    commit in SQLite, selection, encoding and sending the next offers), and the coordinator's own
 *    `fedlora_round_overhead_seconds` (last accepted update -> next offers emitted);
 *  - memory: the coordinator's RSS and heap after a GC, before clients, with them connected, and
 *    after the rounds.
 * Baseline in the same run: a bare socket.io server (same child setup) that acks each update at
 * once, fed the same envelopes by the same clients: raw transport MB/s. The ratio says what the
 * coordinator's opening, validation and aggregation cost on top of the transport.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io, type Socket } from 'socket.io-client';
import { OfferSchema, SOCKET_NAMESPACE, SOCKET_PATH, type ClientToServerEvents, type Offer, type ServerToClientEvents, type UpdateAck } from '../shared/protocol/events.js';
import { authMessage } from '../shared/protocol/auth.js';
import { fromBase64, toBase64 } from '../shared/protocol/encoding.js';
import { encodeSafetensors } from '../shared/safetensors/index.js';
import { makeTensor, numel } from '../shared/tensor.js';
import { sealUpdate } from '../privacy/envelope.js';
import { signEd25519 } from '../privacy/ed25519.js';
import { generateKeyPairs, type KeyPairs } from '../privacy/keys.js';
import { machineLine } from './machine.js';
import { median } from './timing.js';

const ADMIN = 'bench-admin-token-0123456789abcdef';
const MB = 1e6;
const ROUNDS = 4;

interface Server {
  readonly url: string;
  readonly child: ChildProcess;
  memory(): Promise<{ rss: number; heapUsed: number; arrayBuffers: number }>;
  stop(): Promise<void>;
}

async function startServer(args: string[]): Promise<Server> {
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', 'bench/rounds-server.ts', ...args], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  const url = await new Promise<string>((resolve, reject) => {
    let text = '';
    child.stdout!.on('data', (c: Buffer) => {
      text += c.toString('utf8');
      const m = /listening (\S+)\n/.exec(text);
      if (m !== null) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`server exited (${code}) before listening`)));
  });
  return {
    url,
    child,
    memory: () =>
      new Promise((resolve) => {
        child.once('message', (m) => resolve(m as { rss: number; heapUsed: number; arrayBuffers: number }));
        child.send('mem');
      }),
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

class LightClient {
  readonly socket: Socket<ServerToClientEvents, ClientToServerEvents>;
  readonly keys: KeyPairs = generateKeyPairs();
  clientId = '';
  boxKey: Uint8Array = new Uint8Array(32);
  private offers: Array<{ offer: Offer; at: number }> = [];
  private offerWaiter: ((o: { offer: Offer; at: number }) => void) | null = null;

  constructor(url: string) {
    this.socket = io(`${url}${SOCKET_NAMESPACE}`, { path: SOCKET_PATH, transports: ['websocket'], reconnection: false, forceNew: true });
    this.socket.on('offer', (raw) => {
      const item = { offer: OfferSchema.parse(raw), at: performance.now() };
      if (this.offerWaiter !== null) {
        const w = this.offerWaiter;
        this.offerWaiter = null;
        w(item);
      } else this.offers.push(item);
    });
  }

  connected(): Promise<void> {
    return this.socket.connected ? Promise.resolve() : new Promise((resolve) => this.socket.once('connect', () => resolve()));
  }

  join(jobId: string, token: string, modules: Array<{ path: string; outFeatures: number; inFeatures: number }>): Promise<void> {
    const signPublicKey = toBase64(this.keys.sign.publicKey);
    return new Promise((resolve, reject) => {
      this.socket.once('refusal', (r) => reject(new Error(`${r.code}: ${r.message}`)));
      this.socket.once('challenge', (c) => {
        this.boxKey = fromBase64(c.coordinator.boxPublicKey);
        this.socket.emit('auth', { signature: toBase64(signEd25519(authMessage(jobId, c.nonce, signPublicKey), this.keys.sign.secretKey)) });
      });
      this.socket.once('welcome', (w) => {
        this.clientId = w.clientId;
        resolve();
      });
      this.socket.emit('hello', {
        protocolVersion: 1,
        jobId,
        enrolmentToken: token,
        signPublicKey,
        backend: { name: 'bench', device: 'prepared updates', selfTest: { passed: true } },
        model: { sha256: 'ab'.repeat(32), modules },
      });
    });
  }

  nextOffer(): Promise<{ offer: Offer; at: number }> {
    const queued = this.offers.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve) => (this.offerWaiter = resolve));
  }

  send(update: { jobId: string; round: number; attempt: number; envelope: Uint8Array }): Promise<{ ack: UpdateAck; at: number }> {
    return new Promise((resolve) => this.socket.emit('update', update, (ack) => resolve({ ack, at: performance.now() })));
  }
}

async function api(url: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, ...(body !== undefined && { body: JSON.stringify(body) }) });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

/** Runs `fn` over items with at most `width` in flight. */
async function inBatches<T, R>(items: readonly T[], width: number, fn: (t: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += width) out.push(...(await Promise.all(items.slice(i, i + width).map((t, k) => fn(t, i + k)))));
  return out;
}

/** A prepared update payload for a plan: its tensors filled with small values, n_k = 100. */
function preparedPayload(offer: Offer, seed: number): Uint8Array {
  const tensors = offer.plan.updateTensors.map((t) => makeTensor(t.name, t.shape, Float32Array.from({ length: numel(t.shape) }, (_, i) => ((i * 31 + seed) % 97) / 9700)));
  return encodeSafetensors(tensors, { 'fedlora.examples': '100', 'fedlora.metrics': JSON.stringify({ loss: 1 }) });
}

interface Config {
  clients: number;
  /** Module [m, n] and rank r: a fedavg update is r (m + n) floats. */
  m: number;
  n: number;
  rank: number;
}

async function runConfig(cfg: Config): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fedlora-bench-rounds-'));
  const modules = [{ path: 'model.proj', outFeatures: cfg.m, inFeatures: cfg.n }];
  const server = await startServer(['coordinator', join(dir, 'fedlora.db'), ADMIN]);
  const clients: LightClient[] = [];
  try {
    const idle = await server.memory();
    const { id: jobId } = (await api(server.url, 'POST', '/api/jobs', {
      strategy: 'fedavg', rounds: ROUNDS, clientsPerRound: cfg.clients, minClients: cfg.clients, overSelection: 0, roundDeadlineSeconds: 3600,
      model: { sha256: 'ab'.repeat(32), targetModules: ['proj'] }, rank: cfg.rank, seed: 1,
    })) as { id: string };
    const tokens = await inBatches(Array.from({ length: cfg.clients }), 50, async () => ((await api(server.url, 'POST', `/api/jobs/${jobId}/enrolments`, {})) as { token: string }).token);
    const joinStart = performance.now();
    await inBatches(tokens, 50, async (token) => {
      const c = new LightClient(server.url);
      clients.push(c);
      await c.connected();
      await c.join(jobId, token, modules);
    });
    const joinSeconds = (performance.now() - joinStart) / 1000;
    const rates: number[] = [];
    const overheads: number[] = [];
    let lastAck = 0;
    let envelopeBytes = 0;
    let memConnected = { rss: 0, heapUsed: 0, arrayBuffers: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      const offers = await Promise.all(clients.map((c) => c.nextOffer()));
      if (round === 0) memConnected = await server.memory();
      if (round > 0) overheads.push((Math.min(...offers.map((o) => o.at)) - lastAck) / 1000);
      const envelopes = offers.map(({ offer }, i) =>
        sealUpdate(preparedPayload(offer, i), { jobId, round: offer.round, attempt: offer.attempt, clientId: clients[i]!.clientId }, clients[i]!.keys.sign.secretKey, clients[i]!.boxKey),
      );
      envelopeBytes = envelopes[0]!.length;
      const t0 = performance.now();
      const acks = await Promise.all(clients.map((c, i) => c.send({ jobId, round: offers[i]!.offer.round, attempt: offers[i]!.offer.attempt, envelope: envelopes[i]! })));
      const refused = acks.find((a) => !a.ack.ok);
      if (refused !== undefined) throw new Error(`an update was refused: ${JSON.stringify(refused.ack)}`);
      lastAck = Math.max(...acks.map((a) => a.at));
      rates.push((envelopes.length * envelopeBytes) / MB / ((lastAck - t0) / 1000));
    }
    const after = await server.memory();
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const sum = Number(/fedlora_round_overhead_seconds_sum (\S+)/.exec(metrics)?.[1] ?? NaN);
    const count = Number(/fedlora_round_overhead_seconds_count (\S+)/.exec(metrics)?.[1] ?? NaN);
    for (const c of clients) c.socket.disconnect();
    clients.length = 0;
    await server.stop();

    // Baseline: the same clients' envelopes into a bare socket.io server that acks at once.
    const echo = await startServer(['echo']);
    const echoClients = await inBatches(Array.from({ length: cfg.clients }), 50, async () => {
      const c = new LightClient(echo.url);
      await c.connected();
      return c;
    });
    const envelope = new Uint8Array(envelopeBytes);
    const echoRates: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const t0 = performance.now();
      const acks = await Promise.all(echoClients.map((c) => c.send({ jobId, round: r, attempt: 0, envelope })));
      echoRates.push((echoClients.length * envelopeBytes) / MB / ((Math.max(...acks.map((a) => a.at)) - t0) / 1000));
    }
    for (const c of echoClients) c.socket.disconnect();
    await echo.stop();

    const ingest = median(rates.slice(1));
    const raw = median(echoRates.slice(1));
    const mib = (b: number): string => (b / 2 ** 20).toFixed(0).padStart(5);
    console.log(
      `${String(cfg.clients).padStart(5)}  ${(envelopeBytes / MB).toFixed(3).padStart(8)}  ${joinSeconds.toFixed(1).padStart(6)}  ${ingest.toFixed(1).padStart(9)}  ${raw.toFixed(1).padStart(9)}  ${(ingest / raw).toFixed(2).padStart(5)}` +
        `  ${median(overheads).toFixed(3).padStart(8)}  ${(sum / count).toFixed(3).padStart(8)}  ${mib(idle.rss)} ${mib(memConnected.rss)} ${mib(after.rss)}  ${(((memConnected.rss - idle.rss) / cfg.clients) / 1024).toFixed(0).padStart(6)}`,
    );
  } finally {
    for (const c of clients) c.socket.disconnect();
    if (server.child.exitCode === null && server.child.signalCode === null) await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<void> {
  console.log(machineLine());
  console.log(`fedavg, ${ROUNDS} rounds per line (medians over rounds 2..${ROUNDS}); every client sends one update per round, every round waits for all`);
  console.log('clients  update MB  join s  ingest MB/s  raw MB/s  ratio  overhead s  coord s  RSS MiB idle/connected/after  KiB/client');
  // 1 MB updates: r (m + n) floats = 128 (1024 + 1024) x 4 B; 64 KB at r = 8.
  await runConfig({ clients: 10, m: 1024, n: 1024, rank: 128 });
  await runConfig({ clients: 100, m: 1024, n: 1024, rank: 128 });
  await runConfig({ clients: 1000, m: 1024, n: 1024, rank: 8 });
}
