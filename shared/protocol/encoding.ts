/** Small wire types shared by the protocol schemas: base64 keys and signatures, ids, binary payloads. */
import { z } from 'zod';

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Standard base64 (RFC 4648, with padding) of exactly `bytes` bytes. */
export function base64Bytes(bytes: number, what: string) {
  return z
    .string()
    .regex(BASE64, `${what} must be standard base64`)
    .refine((s) => s.length % 4 === 0 && Buffer.from(s, 'base64').length === bytes, `${what} must decode to ${bytes} bytes`);
}

/** An Ed25519 public key (32 bytes), base64. */
export const SignPublicKeySchema = base64Bytes(32, 'an Ed25519 public key');
/** An X25519 (nacl.box) public key (32 bytes), base64. */
export const BoxPublicKeySchema = base64Bytes(32, 'an X25519 public key');
/** An Ed25519 detached signature (64 bytes), base64. */
export const SignatureSchema = base64Bytes(64, 'an Ed25519 signature');

/** Job and client ids: short URL-safe strings the coordinator makes. */
export const IdSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 characters of [A-Za-z0-9_-]');

/**
 * A binary payload. socket.io delivers binary attachments as a Node Buffer on the server and as an
 * ArrayBuffer or Uint8Array in other clients; all of them are accepted and read as bytes.
 */
export const BinarySchema = z
  .custom<Uint8Array | ArrayBuffer>((v) => v instanceof Uint8Array || v instanceof ArrayBuffer, 'must be binary (a Buffer, Uint8Array or ArrayBuffer)')
  // A plain Uint8Array view over the same bytes, never a Buffer: Buffer#slice aliases instead of
  // copying, which code written for Uint8Array does not expect.
  .transform((b): Uint8Array => (b instanceof Uint8Array ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength) : new Uint8Array(b)));

/** Bytes as base64 (for JSON fields). */
export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** base64 to bytes (the input must already be validated). */
export function fromBase64(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'base64'));
}
