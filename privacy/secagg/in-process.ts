/**
 * Runs one secure aggregation round with every client in this process (the protocol is pure), for
 * simulations, tests and the benchmark. Dropouts are scripted: a client listed under a step sends
 * nothing from that step on, exactly as a client whose connection died. Each client gets a fresh
 * Ed25519 identity; every client trusts the roster of them (identity.ts `rosterTrust`), as a client
 * whose pins were right.
 */
import nacl from 'tweetnacl';
import type { RandomSource } from '../random.js';
import type { KeysBroadcast, ShareKeys, SurvivorView, UnmaskRequest, UnmaskResponse } from './messages.js';
import { rosterTrust } from './identity.js';
import { SecAggClient } from './client.js';
import type { SecAggConfig } from './config.js';
import { SecAggServer, type SecAggResult } from './server.js';

export interface DropoutSchedule {
  readonly advertise?: readonly string[];
  readonly shareKeys?: readonly string[];
  readonly maskedInput?: readonly string[];
  readonly consistency?: readonly string[];
  readonly unmasking?: readonly string[];
}

/** Adversarial simulation: rewrite a client's message before the coordinator sees it. */
export interface Adversary {
  readonly shareKeys?: (msg: ShareKeys) => ShareKeys;
  readonly unmaskResponse?: (msg: UnmaskResponse) => UnmaskResponse;
  /** A coordinator rewriting what it relays to client `to` (an active coordinator). */
  readonly keysBroadcast?: (to: string, msg: KeysBroadcast) => KeysBroadcast;
  readonly survivorView?: (to: string, msg: SurvivorView) => SurvivorView;
  readonly unmaskRequest?: (to: string, msg: UnmaskRequest) => UnmaskRequest;
}

export interface InProcessRound {
  readonly result: SecAggResult;
  /** Bytes each client sent and received, by client (keys 32 B, shares and commitments, masked words). */
  readonly bytesSent: Map<string, number>;
  readonly bytesReceived: Map<string, number>;
}

/**
 * A coordinator and the round's clients, each client with a fresh Ed25519 identity and trusting the
 * roster of them (for tests, benchmarks and runInProcess).
 */
export function inProcessParties(config: SecAggConfig, random?: RandomSource): { server: SecAggServer; clients: Map<string, SecAggClient>; roster: Map<string, Uint8Array>; identities: Map<string, nacl.SignKeyPair> } {
  const identities = new Map(config.clients.map((id) => [id, nacl.sign.keyPair()]));
  const roster = new Map([...identities].map(([id, k]) => [id, k.publicKey]));
  const trust = rosterTrust(roster);
  const server = new SecAggServer(config, roster);
  const clients = new Map(config.clients.map((id) => [id, new SecAggClient(config, id, { identity: { signSecretKey: identities.get(id)!.secretKey }, trust }, random)]));
  return { server, clients, roster, identities };
}

/**
 * @param inputs each client's vector (config.vectorLength values)
 * @param random uniform bits for the stochastic rounding; @default the CSPRNG
 */
export function runInProcess(config: SecAggConfig, inputs: ReadonlyMap<string, ArrayLike<number>>, dropouts: DropoutSchedule = {}, random?: RandomSource, adversary: Adversary = {}): InProcessRound {
  const { server, clients } = inProcessParties(config, random);
  const sent = new Map(config.clients.map((id) => [id, 0]));
  const received = new Map(config.clients.map((id) => [id, 0]));
  const add = (m: Map<string, number>, id: string, bytes: number) => m.set(id, m.get(id)! + bytes);
  const gone = new Set<string>();
  const drop = (ids: readonly string[] | undefined) => ids?.forEach((id) => gone.add(id));

  drop(dropouts.advertise);
  for (const [id, c] of clients) {
    if (gone.has(id)) continue;
    const msg = c.advertiseKeys();
    add(sent, id, 128);
    server.receiveAdvertise(msg);
  }
  const broadcasts = server.closeAdvertise();
  drop(dropouts.shareKeys);
  for (const [id, b] of broadcasts) {
    add(received, id, b.neighbours.length * 192);
    if (gone.has(id)) continue;
    const honest = clients.get(id)!.shareKeys(adversary.keysBroadcast?.(id, b) ?? b);
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
  const view = server.closeMaskedInput();
  drop(dropouts.consistency);
  for (const id of view.survivors) {
    add(received, id, 0);
    if (gone.has(id)) continue;
    const msg = clients.get(id)!.consistencyCheck(adversary.survivorView?.(id, view) ?? view);
    add(sent, id, 64);
    server.receiveViewSignature(msg);
  }
  const requests = server.closeConsistency();
  drop(dropouts.unmasking);
  for (const [id, request] of requests) {
    add(received, id, request.signatures.length * 64);
    if (gone.has(id)) continue;
    const honest = clients.get(id)!.unmask(adversary.unmaskRequest?.(id, request) ?? request);
    const msg = adversary.unmaskResponse?.(honest) ?? honest;
    add(sent, id, (msg.selfSeedShares.length + msg.secretKeyShares.length) * 33);
    server.receiveUnmask(msg);
  }
  return { result: server.finish(), bytesSent: sent, bytesReceived: received };
}
