import { describe, it, expect } from 'vitest';
import { secAggConfig } from '../../../privacy/secagg/config.js';
import { inProcessParties } from '../../../privacy/secagg/in-process.js';
import {
  decodeAdvertiseKeys,
  decodeKeysBroadcast,
  decodeMaskedInput,
  decodeShareKeys,
  decodeSharesDelivery,
  decodeSurvivorView,
  decodeViewSignature,
  decodeUnmaskRequest,
  decodeUnmaskResponse,
  encodeMaskedInputBinary,
  encodeMessage,
} from '../../../privacy/secagg/wire.js';
import { isFedloraError } from '../../../shared/errors.js';

/** Through JSON text, as a socket would carry it. */
const wire = (m: Parameters<typeof encodeMessage>[0]): unknown => JSON.parse(JSON.stringify(encodeMessage(m)));

describe('secure aggregation messages on the wire', () => {
  it('a whole round through JSON gives the exact sum (values on the quantisation grid)', () => {
    const clients = ['a', 'b', 'c', 'd', 'e', 'f'];
    const config = secAggConfig({ context: 'job/round-2', clients, vectorLength: 33, graphSeed: 's' });
    const values = new Map(clients.map((c, k) => [c, Float64Array.from({ length: 33 }, (_, i) => ((k * 33 + i) % 17) / 64 - 0.125)]));
    const { server, clients: byId } = inProcessParties(config);
    const parties = [...byId.values()];
    parties.forEach((p) => server.receiveAdvertise(decodeAdvertiseKeys(wire(p.advertiseKeys()))));
    const keys = server.closeAdvertise();
    parties.forEach((p) => server.receiveShareKeys(decodeShareKeys(wire(p.shareKeys(decodeKeysBroadcast(wire(keys.get(p.id)!)))))));
    const deliveries = server.closeShareKeys();
    parties.slice(1).forEach((p) => server.receiveMaskedInput(decodeMaskedInput(wire(p.maskedInput(decodeSharesDelivery(wire(deliveries.get(p.id)!)), values.get(p.id)!)))));
    const view = decodeSurvivorView(wire(server.closeMaskedInput()));
    expect(view.dropped).toEqual(['a']);
    parties.slice(1).forEach((p) => server.receiveViewSignature(decodeViewSignature(wire(p.consistencyCheck(view)))));
    const requests = server.closeConsistency();
    parties.slice(1).forEach((p) => server.receiveUnmask(decodeUnmaskResponse(wire(p.unmask(decodeUnmaskRequest(wire(requests.get(p.id)!)))))));
    const { sum } = server.finish();
    const expected = new Float64Array(33);
    for (const c of clients.slice(1)) values.get(c)!.forEach((v, i) => (expected[i]! += v));
    expect(sum).toEqual(expected);
  });

  it('a masked input as raw bytes (even at an odd offset, as a socket buffer may be) decodes to the same words as base64', () => {
    const masked = Uint32Array.from([0, 1, 0xffffffff, 0x12345678, 2 ** 31]);
    const raw = encodeMaskedInputBinary({ from: 'a', masked }).masked;
    const odd = new Uint8Array(raw.length + 1).subarray(1);
    odd.set(raw);
    expect(decodeMaskedInput({ from: 'a', masked: odd }).masked).toEqual(masked);
    expect(decodeMaskedInput(wire({ from: 'a', masked })).masked).toEqual(masked);
    expect(() => decodeMaskedInput({ from: 'a', masked: odd.subarray(1) })).toThrow(/whole number/);
  });

  it('refuses malformed messages with FL_ERR_SECAGG_PROTOCOL naming the field', () => {
    const cases: [() => unknown, RegExp][] = [
      [() => decodeAdvertiseKeys({ from: 'a', cPublicKey: Buffer.alloc(31).toString('base64'), sPublicKey: Buffer.alloc(32).toString('base64') }), /cPublicKey: .*32 bytes/],
      [() => decodeMaskedInput({ from: 'a', masked: Buffer.alloc(7).toString('base64') }), /masked: .*whole number/],
      [() => decodeUnmaskResponse({ from: 'a', selfSeedShares: [{ of: 'b', y: '!!' }], secretKeyShares: [] }), /selfSeedShares\.0\.y/],
      [() => decodeUnmaskRequest({ survivors: ['a'], dropped: [], extra: 1 }), /malformed UnmaskRequest/],
    ];
    for (const [fn, text] of cases) {
      try {
        fn();
        expect.unreachable();
      } catch (e) {
        expect(isFedloraError(e, 'FL_ERR_SECAGG_PROTOCOL'), String(e)).toBe(true);
        expect(String(e)).toMatch(text);
      }
    }
  });
});
