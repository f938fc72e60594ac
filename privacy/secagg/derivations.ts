/**
 * The keys and commitments both sides of secure aggregation derive (key-agreement.ts deriveKey),
 * in one place so client and coordinator cannot disagree.
 */
import { deriveKey } from './key-agreement.js';

/** The key that seals u's shares for v (from X25519(c_u, c_v); direction-bound). */
export const shareSealingKey = (context: string, from: string, to: string, agreed: Uint8Array) => deriveKey('share-sealing', [context, from, to, agreed]);

/** The pairwise mask key of {u, v} (from X25519(s_u, s_v); the same for both). */
export function pairMaskKey(context: string, a: string, b: string, agreed: Uint8Array): Uint8Array {
  const [lo, hi] = a < b ? [a, b] : [b, a];
  return deriveKey('pair-mask', [context, lo, hi, agreed]);
}

/** u adds the pair mask with v when u < v and subtracts it otherwise, so the pair cancels in the sum. */
export const pairSign = (self: string, other: string): 1 | -1 => (self < other ? 1 : -1);

/** The self-mask key of u from its seed b_u. */
export const selfMaskKey = (context: string, client: string, seed: Uint8Array) => deriveKey('self-mask', [context, client, seed]);

/** The commitment of b_u the coordinator checks a reconstructed seed against. */
export const selfSeedCommitment = (context: string, client: string, seed: Uint8Array) => deriveKey('self-seed-commitment', [context, client, seed]);

/** The commitment of one share (of b_u or of s_u^SK) held by `holder`; shares are uniform 256-bit values, so it hides them. */
export const shareCommitment = (kind: 'self-seed' | 'secret-key', context: string, owner: string, holder: string, y: Uint8Array) =>
  deriveKey('share-commitment', [kind, context, owner, holder, y]);

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}
