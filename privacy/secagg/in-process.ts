/**
 * Runs one secure aggregation round with every client in this process (the protocol is pure), for
 * simulations, tests and the benchmark. Dropouts are scripted: a client listed under a step sends
 * nothing from that step on, exactly as a client whose connection died.
 */
import type { RandomSource } from '../random.js';
import type { ShareKeys, UnmaskResponse } from './messages.js';
import { SecAggClient } from './client.js';
import type { SecAggConfig } from './config.js';
import { SecAggServer, type SecAggResult } from './server.js';

export interface DropoutSchedule {
  readonly advertise?: readonly string[];
  readonly shareKeys?: readonly string[];
  readonly maskedInput?: readonly string[];
  readonly unmasking?: readonly string[];
}

/** Adversarial simulation: rewrite a client's message before the coordinator sees it. */
export interface Adversary {
  readonly shareKeys?: (msg: ShareKeys) => ShareKeys;
  readonly unmaskResponse?: (msg: UnmaskResponse) => UnmaskResponse;
}

export interface InProcessRound {
  readonly result: SecAggResult;
  /** Bytes each client sent and received, by client (keys 32 B, shares and commitments, masked words). */
  readonly bytesSent: Map<string, number>;
  readonly bytesReceived: Map<string, number>;
}

/**
 * @param inputs each client's vector (config.vectorLength values)
 * @param random uniform bits for the stochastic rounding; @default the CSPRNG
 */
export function runInProcess(config: SecAggConfig, inputs: ReadonlyMap<string, ArrayLike<number>>, dropouts: DropoutSchedule = {}, random?: RandomSource, adversary: Adversary = {}): InProcessRound {
  const server = new SecAggServer(config);
  const clients = new Map(config.clients.map((id) => [id, new SecAggClient(config, id, random)]));
  const sent = new Map(config.clients.map((id) => [id, 0]));
  const received = new Map(config.clients.map((id) => [id, 0]));
  const add = (m: Map<string, number>, id: string, bytes: number) => m.set(id, m.get(id)! + bytes);
  const gone = new Set<string>();
  const drop = (ids: readonly string[] | undefined) => ids?.forEach((id) => gone.add(id));

  drop(dropouts.advertise);
  for (const [id, c] of clients) {
    if (gone.has(id)) continue;
    const msg = c.advertiseKeys();
    add(sent, id, 64);
    server.receiveAdvertise(msg);
  }
  const broadcasts = server.closeAdvertise();
  drop(dropouts.shareKeys);
  for (const [id, b] of broadcasts) {
    add(received, id, b.neighbours.length * 64);
    if (gone.has(id)) continue;
    const honest = clients.get(id)!.shareKeys(b);
    const msg = adversary.shareKeys?.(honest) ?? honest;
    add(sent, id, 32 + msg.shares.reduce((s, x) => s + x.sealed.length + 64, 0));
    server.receiveShareKeys(msg);
  }
  const deliveries = server.closeShareKeys();
  drop(dropouts.maskedInput);
  for (const [id, d] of deliveries) {
    add(received, id, d.shares.reduce((s, x) => s + x.sealed.length, 0));
    if (gone.has(id)) continue;
    const msg = clients.get(id)!.maskedInput(d, inputs.get(id)!);
    add(sent, id, msg.masked.byteLength);
    server.receiveMaskedInput(msg);
  }
  const request = server.closeMaskedInput();
  drop(dropouts.unmasking);
  for (const id of request.survivors) {
    add(received, id, 0);
    if (gone.has(id)) continue;
    const honest = clients.get(id)!.unmask(request);
    const msg = adversary.unmaskResponse?.(honest) ?? honest;
    add(sent, id, (msg.selfSeedShares.length + msg.secretKeyShares.length) * 33);
    server.receiveUnmask(msg);
  }
  return { result: server.finish(), bytesSent: sent, bytesReceived: received };
}
