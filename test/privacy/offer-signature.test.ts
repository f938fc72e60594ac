/**
 * Offer signatures (privacy/envelope.ts): what the coordinator signs is what a client checks, after
 * the offer went through JSON (socket.io's wire form); any change to a signed part, another key or
 * no signature is FL_ERR_OFFER_SIGNATURE.
 */
import { describe, expect, it } from 'vitest';
import { generateKeyPairs } from '../../privacy/keys.js';
import { offerMessage, signOffer, verifyOffer, type OfferSigned } from '../../privacy/envelope.js';
import { canonicalJson } from '../../shared/protocol/canonical-json.js';
import { isFedloraError } from '../../shared/errors.js';

const plan = {
  strategy: 'fedavg', variant: 'lora', rank: 2, alpha: 2, start: 'global', trainable: ['A', 'B'],
  modules: [{ path: 'head', outFeatures: 10, inFeatures: 12, rank: 2, alpha: 2 }],
  updateTensors: [{ name: 'base_model.model.head.lora_A.weight', shape: [2, 12] }],
  training: { epochs: 1, batchSize: 16, lr: 0.001 },
  clientDp: { clip: 1, noiseMultiplier: 1.1, delta: 1e-5, rounds: 3, targetEpsilon: undefined },
  seed: 7,
  extra: {},
};
const offer: OfferSigned = { jobId: 'job_1', round: 2, attempt: 1, deadline: 1_767_000_000_123.5, maxUpdateBytes: 4096, state: Uint8Array.from([1, 2, 3, 4, 5]), plan };

function refused(f: () => void): string {
  try {
    f();
  } catch (e) {
    expect(isFedloraError(e, 'FL_ERR_OFFER_SIGNATURE'), String(e)).toBe(true);
    return (e as Error).message;
  }
  throw new Error('expected FL_ERR_OFFER_SIGNATURE');
}

describe('signed offers', () => {
  const keys = generateKeyPairs();
  const signature = signOffer(offer, keys.sign.secretKey);
  // What a client holds: the plan after JSON (key order and undefined members may differ).
  const received = { ...offer, plan: JSON.parse(JSON.stringify(Object.fromEntries(Object.entries(plan).reverse()))) as unknown };

  it('verifies after a JSON round trip, and the message names every signed field', () => {
    expect(() => verifyOffer(received, signature, keys.sign.publicKey)).not.toThrow();
    const text = new TextDecoder().decode(offerMessage(offer));
    expect(text.split('\n').slice(0, 6)).toEqual(['fedlora-offer-v1', 'job_1', '2', '1', '1767000000123.5', '4096']);
    expect(canonicalJson({ b: 1, a: [undefined, { d: undefined, c: 'x' }] })).toBe('{"a":[null,{"c":"x"}],"b":1}');
  });

  it.each([
    ['the state', { state: Uint8Array.from([1, 2, 3, 4, 6]) }],
    ['the round', { round: 3 }],
    ['the attempt', { attempt: 0 }],
    ['the job', { jobId: 'job_2' }],
    ['the deadline', { deadline: offer.deadline + 1 }],
    ['the update size limit', { maxUpdateBytes: 8192 }],
    ['the plan (DP noise)', { plan: { ...plan, clientDp: { ...plan.clientDp, noiseMultiplier: 0.01 } } }],
    ['the secure settings', { secureAggregation: { clients: ['a', 'b'] } }],
  ])('refuses an offer with %s changed', (_what, change) => {
    expect(refused(() => verifyOffer({ ...received, ...change }, signature, keys.sign.publicKey))).toMatch(/does not verify with the pinned coordinator key/);
  });

  it('refuses another key and a missing signature', () => {
    expect(refused(() => verifyOffer(received, signature, generateKeyPairs().sign.publicKey))).toMatch(/does not verify/);
    expect(refused(() => verifyOffer(received, undefined, keys.sign.publicKey))).toMatch(/is not signed/);
  });
});
