/**
 * `npm run bench secagg`: the per-round overhead of secure aggregation (privacy/secagg, SecAgg+ with
 * the default sparse graph) against the plain round measured in the same run, for 10, 100 and 500
 * clients, with
 * - a Fed-SB-sized update: 224 matrices x r = 16, r^2 each (57,344 values), and
 * - an FFA-sized update: 64 modules x 4096 x 16 (B only; 4,194,304 values).
 * Clients are simulated in process (the protocol is pure): real X25519, ChaCha20, Shamir, secretbox.
 *
 * Plain round: each client uploads its float32 vector (4 bytes a value); the coordinator adds the
 * n vectors into a float64 sum (best of 3). The secure round is measured once (a full run). Secure round: the four steps; client time is the mean per client of
 * its own work, server time the coordinator's (relaying, summing, unmasking).
 *
 * Full simulation costs n k L mask words; where that exceeds FULL_LIMIT_WORDS (FFA at 100 and 500
 * clients: 9 and 61 billion words), the run simulates the key-agreement and share steps for all
 * n clients at a short vector, then measures the mask-dependent costs at full size for real on
 * sampled clients (client: quantise + k + 1 mask expansions; server: one masked-input sum and one
 * mask expansion) and composes: client = keys/shares + masking; server = n (sum + self mask) +
 * dropped k (pair masks) + reconstructions. Those rows say "composed". SECAGG_BENCH_FULL=1 forces
 * full simulation everywhere (hours on one core). SECAGG_BENCH_ONLY=Fed-SB (or FFA) runs one size.
 */
import { performance } from 'node:perf_hooks';
import { inProcessParties } from '../privacy/secagg/in-process.js';
import { secAggConfig, type SecAggConfig } from '../privacy/secagg/config.js';
import { applyMask } from '../privacy/secagg/mask-expansion.js';
import { seededTestSource } from '../privacy/random.js';
import { machineLine } from './machine.js';

const FULL_LIMIT_WORDS = 1.5e9;
const SIZES = [
  { name: 'Fed-SB 224 x 16^2', length: 224 * 16 * 16 },
  { name: 'FFA 64 x 4096 x 16', length: 64 * 4096 * 16 },
] as const;
const CLIENTS = [10, 100, 500];
const DROPOUT_RATE = 0.05;

const now = () => performance.now();

interface Timing {
  clientMs: number; // mean per client
  serverMs: number;
  sentBytes: number; // mean per client
  receivedBytes: number;
  composed: boolean;
  correct: boolean | null; // the unmasked sum checked against the plain one (null: composed)
}

/** A client's vector: uniform in [-0.01, 0.01] (a typical LoRA delta), from a seeded source. */
function vectorFor(length: number, seed: number): Float32Array {
  const r = seededTestSource(`bench-${seed}`);
  return Float32Array.from({ length }, () => (r.nextUint32() / 2 ** 32 - 0.5) * 0.02);
}

/** The plain round: n float32 uploads summed into float64 by the coordinator (best of 3, so JIT warm-up does not count). */
function plainRound(n: number, length: number, vector: Float32Array): { serverMs: number; bytes: number } {
  let best = Infinity;
  for (let rep = 0; rep < 3; rep++) {
    const sum = new Float64Array(length);
    const t0 = now();
    for (let k = 0; k < n; k++) for (let i = 0; i < length; i++) sum[i]! += vector[i]!;
    best = Math.min(best, now() - t0);
  }
  return { serverMs: best, bytes: 4 * length };
}

/** Runs the four steps for every client; masked inputs of `dropped` never arrive. */
function fullRound(config: SecAggConfig, vector: Float32Array, dropped: ReadonlySet<string>, check: boolean): Timing {
  let clientMs = 0;
  let serverMs = 0;
  let sent = 0;
  let received = 0;
  const time = <T>(side: 'c' | 's', fn: () => T): T => {
    const t0 = now();
    const out = fn();
    if (side === 'c') clientMs += now() - t0;
    else serverMs += now() - t0;
    return out;
  };
  const random = seededTestSource('bench-rounding');
  const parties = time('c', () => inProcessParties(config, random));
  const server = parties.server;
  const clients = [...parties.clients.values()];
  for (const c of clients) {
    const m = time('c', () => c.advertiseKeys());
    sent += 128;
    time('s', () => server.receiveAdvertise(m));
  }
  const keys = time('s', () => server.closeAdvertise());
  for (const c of clients) {
    const b = keys.get(c.id)!;
    received += b.neighbours.length * 192;
    const m = time('c', () => c.shareKeys(b));
    sent += 32 + m.shares.reduce((s, x) => s + x.sealed.length + 64, 0);
    time('s', () => server.receiveShareKeys(m));
  }
  const deliveries = time('s', () => server.closeShareKeys());
  for (const c of clients) {
    const d = deliveries.get(c.id)!;
    received += d.shares.reduce((s, x) => s + x.sealed.length, 0);
    if (dropped.has(c.id)) continue;
    const m = time('c', () => c.maskedInput(d, vector));
    sent += m.masked.byteLength;
    time('s', () => server.receiveMaskedInput(m));
  }
  const view = time('s', () => server.closeMaskedInput());
  for (const c of clients) {
    if (dropped.has(c.id)) continue;
    received += (view.survivors.length + view.dropped.length) * 8; // ids, ~8 bytes each
    const m = time('c', () => c.consistencyCheck(view));
    sent += 64;
    time('s', () => server.receiveViewSignature(m));
  }
  const requests = time('s', () => server.closeConsistency());
  for (const c of clients) {
    if (dropped.has(c.id)) continue;
    const request = requests.get(c.id)!;
    received += (request.survivors.length + request.dropped.length) * 8 + request.signatures.length * 72;
    const m = time('c', () => c.unmask(request));
    sent += (m.selfSeedShares.length + m.secretKeyShares.length) * 33;
    time('s', () => server.receiveUnmask(m));
  }
  const result = time('s', () => server.finish());
  let correct: boolean | null = null;
  if (check) {
    // Every survivor sent the same vector: the sum is survivors x vector, within the bound.
    const s = result.survivors.length;
    correct = result.sum.every((v, i) => Math.abs(v - s * vector[i]!) <= result.errorBound + 1e-9);
  }
  const n = config.clients.length;
  return { clientMs: clientMs / n, serverMs, sentBytes: sent / n, receivedBytes: received / n, composed: false, correct };
}

/** Full-size mask costs measured on a sample, composed with a full simulation at a short vector. */
function composedRound(config: SecAggConfig, vector: Float32Array, droppedCount: number): Timing {
  const short = secAggConfig({ ...config, vectorLength: 1024 });
  const shortVector = vector.subarray(0, 1024);
  const dropped = new Set(short.clients.slice(0, droppedCount));
  const small = fullRound(short, shortVector, dropped, false);
  // Full-size masking by a real client: run one small round's first steps at full size for 3 clients.
  const L = config.vectorLength;
  const random = seededTestSource('bench-rounding');
  const parties = inProcessParties(config, random);
  const server = parties.server;
  const clients = [...parties.clients.values()];
  clients.forEach((c) => server.receiveAdvertise(c.advertiseKeys()));
  const keys = server.closeAdvertise();
  clients.forEach((c) => server.receiveShareKeys(c.shareKeys(keys.get(c.id)!)));
  const deliveries = server.closeShareKeys();
  const sample = clients.slice(0, 3);
  let maskMs = 0;
  let sumMs = 0;
  for (const c of sample) {
    const t0 = now();
    const m = c.maskedInput(deliveries.get(c.id)!, vector);
    maskMs += now() - t0;
    const t1 = now();
    server.receiveMaskedInput(m);
    sumMs += now() - t1;
  }
  maskMs /= sample.length;
  sumMs /= sample.length;
  const target = new Uint32Array(L);
  const expansions: number[] = [];
  for (let rep = 0; rep < 5; rep++) {
    const t2 = now();
    applyMask(target, new Uint8Array(32).fill(rep), -1);
    expansions.push(now() - t2);
  }
  const expandMs = expansions.sort((a, b) => a - b)[2]!; // median of 5: it is multiplied by n
  const n = config.clients.length;
  const smallMaskShare = small.clientMs; // includes masking a 1024 vector: negligible next to full size
  const dataBytes = 4 * (L - 1024);
  return {
    clientMs: smallMaskShare + maskMs,
    serverMs: small.serverMs + (n - droppedCount) * (sumMs + expandMs) + droppedCount * config.degree * expandMs,
    sentBytes: small.sentBytes + ((n - droppedCount) / n) * dataBytes,
    receivedBytes: small.receivedBytes,
    composed: true,
    correct: null,
  };
}

const fmtBytes = (b: number) => (b >= 2 ** 20 ? `${(b / 2 ** 20).toFixed(2)} MiB` : `${(b / 1024).toFixed(1)} KiB`);

export async function run(): Promise<void> {
  console.log(machineLine());
  const full = process.env.SECAGG_BENCH_FULL === '1';
  console.log('size | n | k | t | dropped | plain server ms | secure server ms (x plain) | secure client ms | plain up/client | secure up / down per client (x plain up) | sum ok | how');
  for (const size of SIZES.filter((s) => process.env.SECAGG_BENCH_ONLY === undefined || s.name.startsWith(process.env.SECAGG_BENCH_ONLY))) {
    const vector = vectorFor(size.length, size.length);
    for (const n of CLIENTS) {
      for (const rate of [0, DROPOUT_RATE]) {
        const clients = Array.from({ length: n }, (_, i) => `client-${String(i).padStart(3, '0')}`);
        const config = secAggConfig({ context: `bench/${size.name}/${n}`, clients, vectorLength: size.length, graphSeed: `bench-${n}` });
        const droppedCount = Math.round(rate * n);
        const plain = plainRound(n, size.length, vector);
        const useFull = full || n * (config.degree + 1) * size.length <= FULL_LIMIT_WORDS;
        const t = useFull ? fullRound(config, vector, new Set(clients.slice(0, droppedCount)), true) : composedRound(config, vector, droppedCount);
        console.log(
          [
            size.name,
            n,
            config.degree,
            config.threshold,
            droppedCount,
            plain.serverMs.toFixed(1),
            `${t.serverMs.toFixed(1)} (x${(t.serverMs / plain.serverMs).toFixed(1)})`,
            t.clientMs.toFixed(1),
            fmtBytes(plain.bytes),
            `${fmtBytes(t.sentBytes)} / ${fmtBytes(t.receivedBytes)} (x${(t.sentBytes / plain.bytes).toFixed(3)})`,
            t.correct === null ? '-' : t.correct ? 'yes' : 'NO',
            t.composed ? 'composed' : 'full',
          ].join(' | '),
        );
      }
    }
  }
}
