/**
 * The SHA-256 of a frozen factor's bytes (float32 little-endian, as safetensors stores them), so a
 * client's A (FFA-LoRA) or A and B (Fed-SB) can be compared with the global ones without sending
 * them: a client checks the hash on join, the coordinator on every update that carries them.
 */
import { createHash } from 'node:crypto';
import os from 'node:os';

if (os.endianness() !== 'LE') {
  // Typed arrays use the platform's byte order; every platform Node ships for is little-endian.
  throw new Error('fedlora aggregation assumes a little-endian platform (float32 bytes as in safetensors)');
}

/** Hex SHA-256 of the float32 bytes of `data`. */
export function sha256OfFloat32(data: Float32Array): string {
  return createHash('sha256').update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)).digest('hex');
}
