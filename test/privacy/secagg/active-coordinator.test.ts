/**
 * Secure aggregation against an active (malicious) coordinator: signed advertised keys checked
 * against the peers' enrolled (pinned) signing keys, and the consistency check of Bonawitz et al.
 * 2017 (each survivor signs the survivor view before unmasking). Every party is real (X25519,
 * Ed25519, Shamir, ChaCha20); the coordinator's lies are scripted by rewriting what it relays.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { afterAll, describe, expect, it } from 'vitest';
import { SecAggClient } from '../../../privacy/secagg/client.js';
import { secAggConfig } from '../../../privacy/secagg/config.js';
import { advertiseDigest, rosterTrust, viewDigest } from '../../../privacy/secagg/identity.js';
import { inProcessParties, runInProcess } from '../../../privacy/secagg/in-process.js';
import { AgreementKeyPair } from '../../../privacy/secagg/key-agreement.js';
import type { KeysBroadcast, SurvivorView } from '../../../privacy/secagg/messages.js';
import { pinnedPeerTrust } from '../../../privacy/secagg/peer-pins.js';
import { isFedloraError, type ErrorCode } from '../../../shared/errors.js';

const clients = Array.from({ length: 8 }, (_, i) => `client-${i}`);
const config = secAggConfig({ context: 'job-9/round-3/attempt-0', clients, vectorLength: 64, graphSeed: 'g' });
const values = new Map(clients.map((c, k) => [c, Float64Array.from({ length: 64 }, (_, i) => ((k * 64 + i) % 13) / 64 - 0.1)]));

function expectCode(fn: () => unknown, code: ErrorCode, text?: RegExp): void {
  try {
    fn();
  } catch (e) {
    expect(isFedloraError(e, code), String(e)).toBe(true);
    if (text) expect((e as Error).message).toMatch(text);
    return;
  }
  expect.unreachable(`expected ${code}`);
}

/** What a coordinator that wants to read client-0's messages for `victim` relays: its own keys. */
function substitute(b: KeysBroadcast, victim: string, opts: { signWith?: nacl.SignKeyPair } = {}): KeysBroadcast {
  const c = new AgreementKeyPair().publicKey;
  const s = new AgreementKeyPair().publicKey;
  return {
    neighbours: b.neighbours.map((p) => {
      if (p.id !== victim) return p;
      if (opts.signWith === undefined) return { ...p, cPublicKey: c, sPublicKey: s };
      const signature = nacl.sign.detached(advertiseDigest(config.context, victim, c, s), opts.signWith.secretKey);
      return { ...p, cPublicKey: c, sPublicKey: s, signPublicKey: opts.signWith.publicKey, signature };
    }),
  };
}

describe('an active coordinator substituting a client\'s advertised keys', () => {
  it('keys swapped under the enrolled signing key: the signature does not verify, the neighbour refuses (FL_ERR_SECAGG_IDENTITY)', () => {
    expectCode(
      () => runInProcess(config, values, {}, undefined, { keysBroadcast: (to, b) => (to === 'client-0' ? substitute(b, 'client-1') : b) }),
      'FL_ERR_SECAGG_IDENTITY',
      /keys relayed for 'client-1' are not signed by its enrolled key/,
    );
  });

  it('keys and signing key swapped (signed by a key of the coordinator): refused, the key is not the enrolled one', () => {
    const mallory = nacl.sign.keyPair();
    expectCode(
      () => runInProcess(config, values, {}, undefined, { keysBroadcast: (to, b) => (to === 'client-0' ? substitute(b, 'client-1', { signWith: mallory }) : b) }),
      'FL_ERR_SECAGG_IDENTITY',
      /'client-1' is not its enrolled key/,
    );
  });

  it('an honest coordinator refuses advertised keys that are not signed with the enrolled key, naming the client', () => {
    const { server, clients: parties } = inProcessParties(config);
    const msg = parties.get('client-2')!.advertiseKeys();
    expectCode(() => server.receiveAdvertise({ ...msg, cPublicKey: new AgreementKeyPair().publicKey }), 'FL_ERR_SECAGG_IDENTITY', /'client-2' are not signed/);
    server.receiveAdvertise(msg); // the genuine message is still taken
  });

  describe('with pinned peer keys (the agent\'s trust on first use)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedlora-peer-pins-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    /** One client's view of the key step, with the agent's file-backed trust. */
    function shareWithPins(pins: string, relay: (b: KeysBroadcast) => KeysBroadcast): void {
      const { server, clients: parties, identities } = inProcessParties(config);
      for (const c of parties.values()) server.receiveAdvertise(c.advertiseKeys());
      const pinned = new SecAggClient(config, 'client-0', { identity: { signSecretKey: identities.get('client-0')!.secretKey }, trust: pinnedPeerTrust(pins, 'http://127.0.0.1:1 job-9') }, undefined);
      // the pinned client replaces client-0: the others' broadcasts stay valid
      pinned.advertiseKeys();
      const broadcast = server.closeAdvertise().get('client-0')!;
      pinned.shareKeys(relay(broadcast));
    }

    it('a swapped signing key for a peer pinned in an earlier round is refused, naming both fingerprints', () => {
      const pins = join(dir, 'a.json');
      // every round has fresh identities in inProcessParties: pin the first round's peer keys ...
      const first = inProcessParties(config);
      for (const c of first.clients.values()) first.server.receiveAdvertise(c.advertiseKeys());
      const trust = pinnedPeerTrust(pins, 'http://127.0.0.1:1 job-9');
      const honest = new SecAggClient(config, 'client-0', { identity: { signSecretKey: first.identities.get('client-0')!.secretKey }, trust });
      honest.advertiseKeys();
      honest.shareKeys(first.server.closeAdvertise().get('client-0')!);
      // ... then a later round where the coordinator relays keys signed by another "client-1" key
      expectCode(() => shareWithPins(pins, (b) => b), 'FL_ERR_SECAGG_IDENTITY', /relays signing key [0-9a-f]{16}\.\.\. for peer 'client-\d', but .*a\.json pinned [0-9a-f]{16}\.\.\./);
    });

    it('pins every neighbour of the round in one file, and a refused round pins nothing', () => {
      const pins = join(dir, 'c.json');
      shareWithPins(pins, (b) => b);
      const file = JSON.parse(readFileSync(pins, 'utf8')) as { peers: Record<string, { signPublicKey: string }> };
      expect(Object.keys(file.peers).sort()).toEqual(clients.slice(1).map((c) => `http://127.0.0.1:1 job-9\n${c}`));
      const untouched = join(dir, 'd.json');
      expect(() => shareWithPins(untouched, (b) => ({ neighbours: b.neighbours.map((p, i) => (i === 3 ? { ...p, signPublicKey: nacl.sign.keyPair().publicKey } : p)) }))).toThrow(/FL_ERR_SECAGG_IDENTITY/);
      expect(existsSync(untouched)).toBe(false);
    });

    it('first sight pins whatever the coordinator relays: the documented limit of trust on first use', () => {
      const mallory = nacl.sign.keyPair();
      expect(() => shareWithPins(join(dir, 'b.json'), (b) => substitute(b, 'client-1', { signWith: mallory }))).not.toThrow();
    });
  });
});

describe('the consistency check: a coordinator lying about who dropped', () => {
  /** Runs the round to the view step: every client masked its input. */
  function toView() {
    const parties = inProcessParties(config);
    const { server } = parties;
    const cs = [...parties.clients.values()];
    cs.forEach((c) => server.receiveAdvertise(c.advertiseKeys()));
    const keys = server.closeAdvertise();
    cs.forEach((c) => server.receiveShareKeys(c.shareKeys(keys.get(c.id)!)));
    const deliveries = server.closeShareKeys();
    cs.forEach((c) => server.receiveMaskedInput(c.maskedInput(deliveries.get(c.id)!, values.get(c.id)!)));
    return { ...parties, view: server.closeMaskedInput() };
  }

  it('the honest round passes the check and gives the exact sum', () => {
    const { result } = runInProcess(config, values);
    const expected = new Float64Array(64);
    for (const c of clients) values.get(c)!.forEach((v, i) => (expected[i]! += v));
    result.sum.forEach((v, i) => expect(Math.abs(v - expected[i]!)).toBeLessThanOrEqual(result.errorBound));
    expect(result.dropped.consistency).toEqual([]);
  });

  it('telling one client that a neighbour dropped (to get its share of that neighbour\'s mask key) is caught: it aborts with FL_ERR_SECAGG_INCONSISTENT and reveals nothing', () => {
    const { clients: parties, roster, view } = toView();
    const victim = parties.get('client-0')!;
    // the lie: client-1 (a neighbour of client-0, which did send its masked input) "dropped"
    const lie: SurvivorView = { survivors: view.survivors.filter((c) => c !== 'client-1'), dropped: [...view.dropped, 'client-1'] };
    const signatures = new Map<string, Uint8Array>();
    signatures.set('client-0', victim.consistencyCheck(lie).signature);
    for (const c of parties.values()) if (c.id !== 'client-0') signatures.set(c.id, c.consistencyCheck(view).signature);
    // the coordinator shows client-0 the lie with the others' signatures (of the true view) ...
    const others = [...parties.keys()].filter((c) => c !== 'client-0' && c !== 'client-1').map((from) => ({ from, signature: signatures.get(from)! }));
    expectCode(() => victim.unmask({ ...lie, signatures: others }), 'FL_ERR_SECAGG_INCONSISTENT', /'client-\d' did not sign this survivor view/);
    // ... and nothing was revealed: a second request finds the client done
    expectCode(() => victim.unmask({ ...lie, signatures: [] }), 'FL_ERR_SECAGG_PROTOCOL', /step 'done'/);
    // the signatures really are of different views (not a bug in the check)
    expect(nacl.sign.detached.verify(viewDigest(config.context, view), signatures.get('client-2')!, roster.get('client-2')!)).toBe(true);
    expect(nacl.sign.detached.verify(viewDigest(config.context, lie), signatures.get('client-2')!, roster.get('client-2')!)).toBe(false);
  });

  it('an unmasking request for another view than the one signed is refused', () => {
    const { clients: parties, view } = toView();
    const c0 = parties.get('client-0')!;
    c0.consistencyCheck(view);
    expectCode(() => c0.unmask({ survivors: view.survivors.filter((c) => c !== 'client-5'), dropped: ['client-5'], signatures: [] }), 'FL_ERR_SECAGG_INCONSISTENT', /not the 8 and 0 this client signed/);
  });

  it('withholding the neighbours\' signatures (fewer than t) is refused', () => {
    const { server, clients: parties, view } = toView();
    for (const c of parties.values()) server.receiveViewSignature(c.consistencyCheck(view));
    const request = server.closeConsistency().get('client-0')!;
    expect(request.signatures.length).toBeGreaterThanOrEqual(config.threshold);
    expectCode(() => parties.get('client-0')!.unmask({ ...request, signatures: request.signatures.slice(0, config.threshold - 1) }), 'FL_ERR_SECAGG_INCONSISTENT', new RegExp(`${config.threshold - 1} neighbours signed the survivor view, fewer than the threshold ${config.threshold}`));
  });

  it('an honest coordinator refuses a survivor\'s signature of another view', () => {
    const { server, clients: parties, view } = toView();
    const other = parties.get('client-3')!.consistencyCheck({ survivors: view.survivors, dropped: [...view.dropped] });
    const forged = { from: 'client-3', signature: nacl.sign.detached(viewDigest(config.context, { survivors: clients.slice(1), dropped: ['client-0'] }), nacl.sign.keyPair().secretKey) };
    expectCode(() => server.receiveViewSignature(forged), 'FL_ERR_SECAGG_INCONSISTENT', /'client-3' signed another survivor view/);
    server.receiveViewSignature(other);
  });

  it('a survivor gone before signing is out of the unmasking, and the sum is still exact', () => {
    const { result } = runInProcess(config, values, { consistency: ['client-4'] });
    expect(result.dropped.consistency).toEqual(['client-4']);
    expect(result.survivors).toContain('client-4'); // its masked input is in the sum
    const expected = new Float64Array(64);
    for (const c of clients) values.get(c)!.forEach((v, i) => (expected[i]! += v));
    result.sum.forEach((v, i) => expect(Math.abs(v - expected[i]!)).toBeLessThanOrEqual(result.errorBound));
  });

  it('rosterTrust refuses a peer outside the roster', () => {
    expectCode(() => rosterTrust(new Map())([{ id: 'client-1', signPublicKey: new Uint8Array(32) }]), 'FL_ERR_SECAGG_IDENTITY', /not in the roster/);
  });
});
