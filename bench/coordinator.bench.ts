/**
 * Coordinator rounds with many connected light clients (issue 5's benchmark): a real coordinator
 * in a child process (`fedlora coordinator start`, SQLite file, socket.io), light clients in this
 * process that seal hand-made fedavg updates after each offer and send them all at once.
 *
 * Per configuration (clients x update size), for the measured round (round 1; round 0 warms up):
 *  - ingestion MB/s: envelope bytes / wall time from the first send to the last ack, which
 *    includes transport, opening (signature, binding, nacl.box decryption), validation and the
 *    streaming aggregation;
 *  - coordinator overhead: from the last accepted update to the next round's offers (aggregate,
 *    commit in SQLite, select, plan, encode and emit offers), read from the coordinator's own
 *    `fedlora_round_overhead_seconds` histogram;
 *  - coordinator memory: its resident set (`fedlora_process_resident_memory_bytes`) after the round.
 * Baseline in the same run: a bare socket.io server in a child process that acks the same binary
 * messages without looking at them; the ratio is ingestion MB/s over that transport-only MB/s.
 *
 * `npm run bench coordinator` (FEDLORA_BENCH_QUICK=1 for the small configurations only).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { io as connect, type Socket } from 'socket.io-client';
import { sealUpdate } from '../privacy/envelope.js';
import { generateKeyPairs } from '../privacy/keys.js';
import { signEd25519 } from '../privacy/ed25519.js';
import { authMessage } from '../shared/protocol/auth.js';
import { fromBase64, toBase64 } from '../shared/protocol/encoding.js';
import { OfferSchema, SOCKET_NAMESPACE, SOCKET_PATH, type Offer } from '../shared/protocol/events.js';
import { encodeSafetensors } from '../shared/safetensors/index.js';
import { makeTensor, numel } from '../shared/tensor.js';
import { machineLine } from './machine.js';

const ADMIN = 'bench-admin-token-0123456789';
const SHA = 'cd'.repeat(32);
const ROOT = join(import.meta.dirname, '..');

interface Config {
  clients: number;
  /** [m, n] of each of the two modules; r = 16, so an update is 2 x 16 (m + n) floats. */
  size: number;
}

function startProcess(args: string[], ready: RegExp): Promise<{ proc: ChildProcess; match: RegExpExecArray }> {
  const proc = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    proc.on('exit', (code) => reject(new Error(`${args.join(' ')} exited (${code})`)));
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const m = ready.exec(line);
      if (m) resolve({ proc, match: m });
    });
  });
}

async function api(url: string, method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, ...(body !== undefined && { body: JSON.stringify(body) }) });
  return (await res.json()) as Record<string, unknown>;
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? NaN : Number(line.split(' ')[1]);
}

interface LightClient {
  socket: Socket;
  clientId: string;
  keys: ReturnType<typeof generateKeyPairs>;
  boxKey: Uint8Array;
  offers: Offer[];
  onOffer?: () => void;
}

async function joinJob(url: string, jobId: string, token: string, modules: Array<{ path: string; outFeatures: number; inFeatures: number }>): Promise<LightClient> {
  const keys = generateKeyPairs();
  const socket = connect(`${url}${SOCKET_NAMESPACE}`, { path: SOCKET_PATH, transports: ['websocket'], reconnection: false, forceNew: true });
  const client: LightClient = { socket, clientId: '', keys, boxKey: new Uint8Array(32), offers: [] };
  socket.on('offer', (o: unknown) => {
    client.offers.push(OfferSchema.parse(o));
    client.onOffer?.();
  });
  const signPublicKey = toBase64(keys.sign.publicKey);
  await new Promise<void>((resolve, reject) => {
    socket.on('refusal', (r: { code: string; message: string }) => reject(new Error(`${r.code}: ${r.message}`)));
    socket.on('challenge', (c: { nonce: string; coordinator: { boxPublicKey: string } }) => {
      client.boxKey = fromBase64(c.coordinator.boxPublicKey);
      socket.emit('auth', { signature: toBase64(signEd25519(authMessage(jobId, c.nonce, signPublicKey), keys.sign.secretKey)) });
    });
    socket.on('welcome', (w: { clientId: string }) => {
      client.clientId = w.clientId;
      resolve();
    });
    socket.emit('hello', { protocolVersion: 1, jobId, enrolmentToken: token, signPublicKey, backend: { name: 'bench', device: 'none', selfTest: { passed: true } }, model: { sha256: SHA, modules } });
  });
  return client;
}

function offerFor(c: LightClient, round: number): Promise<Offer> {
  const found = c.offers.find((o) => o.round === round);
  if (found) return Promise.resolve(found);
  return new Promise((resolve) => {
    c.onOffer = () => {
      const o = c.offers.find((x) => x.round === round);
      if (o) resolve(o);
    };
  });
}

function sealFor(c: LightClient, offer: Offer, k: number): Uint8Array {
  const tensors = offer.plan.updateTensors.map((t) => makeTensor(t.name, t.shape, new Float32Array(numel(t.shape)).fill((k % 13) / 13)));
  const payload = encodeSafetensors(tensors, { 'fedlora.examples': String(1 + (k % 5)) });
  return sealUpdate(payload, { jobId: offer.jobId, round: offer.round, attempt: offer.attempt, clientId: c.clientId }, c.keys.sign.secretKey, c.boxKey);
}

/** Sends every envelope at once; resolves with the wall time to the last ack. */
async function sendAll(clients: LightClient[], offers: Offer[], envelopes: Uint8Array[]): Promise<number> {
  const t0 = performance.now();
  await Promise.all(
    clients.map(
      (c, k) =>
        new Promise<void>((resolve, reject) => {
          c.socket.emit('update', { jobId: offers[k]!.jobId, round: offers[k]!.round, attempt: offers[k]!.attempt, envelope: envelopes[k]! }, (ack: { ok: boolean; error?: { code: string } }) =>
            ack.ok ? resolve() : reject(new Error(`update refused: ${ack.error?.code}`)),
          );
        }),
    ),
  );
  return performance.now() - t0;
}

/** The baseline: a bare socket.io server acking binary messages, in its own process. */
const BARE_SERVER = `
import { createServer } from 'node:http';
import { Server } from 'socket.io';
const http = createServer();
const io = new Server(http, { maxHttpBufferSize: 256 * 1024 * 1024 });
io.on('connection', (s) => s.on('update', (_m, ack) => ack({ ok: true })));
http.listen(0, '127.0.0.1', () => console.log('listening ' + http.address().port));
`;

async function baselineMBps(count: number, bytes: number): Promise<number> {
  const { proc, match } = await startProcess(['--input-type=module', '-e', BARE_SERVER], /listening (\d+)/);
  try {
    const sockets = await Promise.all(
      Array.from({ length: count }, () => {
        const s = connect(`http://127.0.0.1:${match[1]}`, { transports: ['websocket'], reconnection: false, forceNew: true });
        return new Promise<Socket>((resolve) => s.on('connect', () => resolve(s)));
      }),
    );
    const payload = new Uint8Array(bytes).fill(7);
    const run = async () => {
      const t0 = performance.now();
      await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.emit('update', { envelope: payload }, () => resolve()))));
      return performance.now() - t0;
    };
    await run(); // warm-up
    const ms = await run();
    for (const s of sockets) s.disconnect();
    return (count * bytes) / 1e6 / (ms / 1000);
  } finally {
    proc.kill('SIGTERM');
  }
}

async function runConfig(cfg: Config): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fedlora-bench-'));
  // 1,000 enrolments in a minute are over the default API rate limit (600 a minute).
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ http: { rateLimit: 100_000 } }));
  const { proc, match } = await startProcess(
    ['--import', 'tsx', 'test/coordinator/fixtures/cli-child.ts', 'coordinator', 'start', '--config', join(dir, 'config.json'), '--db', join(dir, 'fedlora.db'), '--port', '0', '--admin-token', ADMIN, '--log-level', process.env.FEDLORA_BENCH_LOG ?? 'silent'],
    /listening on (http:\/\/\S+)/,
  );
  const url = match[1]!;
  const clients: LightClient[] = [];
  try {
    const modules = ['q_proj', 'v_proj'].map((p) => ({ path: `model.layers.0.self_attn.${p}`, outFeatures: cfg.size, inFeatures: cfg.size }));
    const job = await api(url, 'POST', '/api/jobs', {
      strategy: 'fedavg', rounds: 3, clientsPerRound: cfg.clients, minClients: cfg.clients, overSelection: 0, rank: 16, seed: 1,
      model: { sha256: SHA, targetModules: ['q_proj', 'v_proj'], modules }, roundDeadlineSeconds: 3600,
    });
    const jobId = job.id as string;
    const rssIdle = await metric(url, 'fedlora_process_resident_memory_bytes');
    const tJoin = performance.now();
    // Join in batches: 1,000 simultaneous handshakes would only measure the accept queue.
    for (let i = 0; i < cfg.clients; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, cfg.clients - i) }, async () => {
          const { token } = (await api(url, 'POST', `/api/jobs/${jobId}/enrolments`)) as { token: string };
          return joinJob(url, jobId, token, modules);
        }),
      );
      clients.push(...batch);
    }
    const joinMs = performance.now() - tJoin;
    let ingestMs = 0;
    let envelopeBytes = 0;
    for (const round of [0, 1]) {
      const offers = await Promise.all(clients.map((c) => offerFor(c, round)));
      const envelopes = clients.map((c, k) => sealFor(c, offers[k]!, k));
      envelopeBytes = envelopes.reduce((n, e) => n + e.length, 0);
      ingestMs = await sendAll(clients, offers, envelopes);
    }
    // The offers of round 2 mark the end of round 1's overhead.
    await Promise.all(clients.map((c) => offerFor(c, 2)));
    const overheadSum = await metric(url, 'fedlora_round_overhead_seconds_sum');
    const overheadCount = await metric(url, 'fedlora_round_overhead_seconds_count');
    const rss = await metric(url, 'fedlora_process_resident_memory_bytes');
    const ingest = envelopeBytes / 1e6 / (ingestMs / 1000);
    const base = await baselineMBps(cfg.clients, Math.round(envelopeBytes / cfg.clients));
    const perClient = envelopeBytes / cfg.clients;
    console.log(
      `${String(cfg.clients).padStart(5)} clients x ${(perClient / 1e6).toFixed(3)} MB: ingestion ${ingest.toFixed(1)} MB/s ` +
        `(bare socket.io ${base.toFixed(1)} MB/s, ratio ${(ingest / base).toFixed(2)}); overhead ${((overheadSum / overheadCount) * 1000).toFixed(0)} ms/round ` +
        `(mean of ${overheadCount}); coordinator RSS ${(rssIdle / 2 ** 20).toFixed(0)} -> ${(rss / 2 ** 20).toFixed(0)} MiB; join ${(joinMs / 1000).toFixed(1)} s`,
    );
  } finally {
    for (const c of clients) c.socket.disconnect();
    proc.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<void> {
  console.log(machineLine());
  const quick = process.env.FEDLORA_BENCH_QUICK === '1';
  // 4096 x 4096 at r = 16, two modules: 1 MiB of F32 per update. 256 x 256: 64 KiB.
  const only = process.env.FEDLORA_BENCH_CLIENTS;
  if (only !== undefined) {
    await runConfig({ clients: Number(only), size: Number(process.env.FEDLORA_BENCH_SIZE ?? 256) });
    return;
  }
  const configs: Config[] = quick ? [{ clients: 10, size: 4096 }, { clients: 100, size: 256 }] : [{ clients: 10, size: 4096 }, { clients: 100, size: 4096 }, { clients: 1000, size: 256 }];
  for (const cfg of configs) await runConfig(cfg);
}
