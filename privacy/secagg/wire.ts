/**
 * The secure aggregation messages as JSON for a transport (socket.io events, HTTP bodies): bytes
 * as base64, the masked vector as base64 of its little-endian words, or as raw bytes where the
 * transport carries binary (socket.io does: `encodeMaskedInputBinary`, no 4/3 inflation). `decode*` validates with zod
 * at the edge (docs/architecture.md, "Conventions") and refuses a malformed message with FL_ERR_SECAGG_PROTOCOL naming
 * the field; the state machines then check the protocol rules.
 */
import { z } from 'zod';
import { FedloraError } from '../../shared/errors.js';
import type { AdvertiseKeys, KeysBroadcast, MaskedInput, ShareKeys, SharesDelivery, SurvivorView, UnmaskRequest, UnmaskResponse, ViewSignature } from './messages.js';

const b64 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
const id = z.string().min(1).max(256);
const bytes = (length?: number) =>
  z
    .string()
    .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'base64')
    .transform((s) => new Uint8Array(Buffer.from(s, 'base64')))
    .refine((b) => length === undefined || b.length === length, `${length} bytes`);

const AdvertiseKeysSchema = z.strictObject({ from: id, cPublicKey: bytes(32), sPublicKey: bytes(32), signature: bytes(64) });
const KeysBroadcastSchema = z.strictObject({ neighbours: z.array(z.strictObject({ id, cPublicKey: bytes(32), sPublicKey: bytes(32), signPublicKey: bytes(32), signature: bytes(64) })) });
const ShareKeysSchema = z.strictObject({
  from: id,
  selfSeedCommitment: bytes(32),
  shares: z.array(z.strictObject({ to: id, sealed: bytes(), selfSeedShareCommitment: bytes(32), secretKeyShareCommitment: bytes(32) })),
});
const SharesDeliverySchema = z.strictObject({ shares: z.array(z.strictObject({ from: id, sealed: bytes() })) });
const MaskedInputSchema = z.strictObject({
  from: id,
  masked: z.union([z.instanceof(Uint8Array), bytes()]).refine((b) => b.length % 4 === 0, 'a whole number of 32-bit words').transform((b) => {
    const words = new Uint32Array(b.length / 4);
    new Uint8Array(words.buffer).set(b);
    return words;
  }),
});
const SurvivorViewSchema = z.strictObject({ survivors: z.array(id), dropped: z.array(id) });
const ViewSignatureSchema = z.strictObject({ from: id, signature: bytes(64) });
const UnmaskRequestSchema = z.strictObject({ survivors: z.array(id), dropped: z.array(id), signatures: z.array(ViewSignatureSchema) });
const revealed = z.array(z.strictObject({ of: id, y: bytes(33) }));
const UnmaskResponseSchema = z.strictObject({ from: id, selfSeedShares: revealed, secretKeyShares: revealed });

function decoder<T>(schema: z.ZodType<T>, what: string): (json: unknown) => T {
  return (json) => {
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new FedloraError('FL_ERR_SECAGG_PROTOCOL', `secure aggregation: malformed ${what}: ${issue.path.join('.') || '(root)'}: ${issue.message}`, { field: issue.path.join('.') });
    }
    return parsed.data;
  };
}

export const decodeAdvertiseKeys = decoder<AdvertiseKeys>(AdvertiseKeysSchema, 'AdvertiseKeys');
export const decodeKeysBroadcast = decoder<KeysBroadcast>(KeysBroadcastSchema, 'KeysBroadcast');
export const decodeShareKeys = decoder<ShareKeys>(ShareKeysSchema, 'ShareKeys');
export const decodeSharesDelivery = decoder<SharesDelivery>(SharesDeliverySchema, 'SharesDelivery');
export const decodeMaskedInput = decoder<MaskedInput>(MaskedInputSchema, 'MaskedInput');
export const decodeSurvivorView = decoder<SurvivorView>(SurvivorViewSchema, 'SurvivorView');
export const decodeViewSignature = decoder<ViewSignature>(ViewSignatureSchema, 'ViewSignature');
export const decodeUnmaskRequest = decoder<UnmaskRequest>(UnmaskRequestSchema, 'UnmaskRequest');
export const decodeUnmaskResponse = decoder<UnmaskResponse>(UnmaskResponseSchema, 'UnmaskResponse');

/** A masked input with its words as raw little-endian bytes, for a transport that carries binary. */
export function encodeMaskedInputBinary(message: MaskedInput): { from: string; masked: Uint8Array } {
  const w = message.masked;
  return { from: message.from, masked: new Uint8Array(w.buffer, w.byteOffset, w.byteLength) };
}

/** Any message as JSON: every Uint8Array / Uint32Array becomes base64 (words little-endian). */
export function encodeMessage(message: AdvertiseKeys | KeysBroadcast | ShareKeys | SharesDelivery | MaskedInput | SurvivorView | ViewSignature | UnmaskRequest | UnmaskResponse): unknown {
  return JSON.parse(
    JSON.stringify(message, (_key, value: unknown) => {
      if (value instanceof Uint8Array) return b64(value);
      if (value instanceof Uint32Array) return b64(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
      return value;
    }),
  );
}
