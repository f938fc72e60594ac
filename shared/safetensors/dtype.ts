/**
 * Safetensors dtypes: their sizes, and the widening of F32 / F16 / BF16 bytes (little-endian, as
 * the format stores them) into a Float32Array. Written by hand rather than taken from a library:
 * the npm safetensors readers either load whole files or lack F16 subnormals, and the conversion
 * is a few lines that the tests check exhaustively over all 65,536 half-precision patterns.
 */
import { endianness } from 'node:os';
import type { DType } from '../tensor.js';

/**
 * Bits per element of every dtype the safetensors format defines (safetensors `Dtype`), so a
 * header can be checked even when it holds tensors fedlora does not read (an I64 buffer of a
 * base checkpoint, say). Sub-byte dtypes (F4, F6) are given in bits for that reason.
 */
export const SAFETENSORS_DTYPE_BITS: Readonly<Record<string, number>> = {
  BOOL: 8, F4: 4, F6_E2M3: 6, F6_E3M2: 6, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8,
  F8_E4M3FNUZ: 8, F8_E5M2FNUZ: 8, I16: 16, U16: 16, F16: 16, BF16: 16, I32: 32, U32: 32, F32: 32,
  F64: 64, I64: 64, U64: 64, C64: 64,
};

/**
 * The order of the safetensors `Dtype` enum ("in increasing alignment order"). The Python writer
 * lays tensors out by this rank descending, then by name, so F32 comes before BF16 before F16.
 */
const DTYPE_ALIGNMENT_RANK: readonly string[] = [
  'BOOL', 'F4', 'F6_E2M3', 'F6_E3M2', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0', 'F8_E4M3FNUZ',
  'F8_E5M2FNUZ', 'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'C64', 'F64', 'I64', 'U64',
];

/** Rank of a dtype in the safetensors alignment order; -1 for a dtype the format does not define. */
export function dtypeAlignmentRank(dtype: string): number {
  return DTYPE_ALIGNMENT_RANK.indexOf(dtype);
}

/** The dtypes fedlora reads (widened to float32); it writes F32 only. */
export const READABLE_DTYPES: readonly DType[] = ['F32', 'F16', 'BF16'];

export function isReadableDtype(dtype: string): dtype is DType {
  return (READABLE_DTYPES as readonly string[]).includes(dtype);
}

/** Bytes per element of a readable dtype. */
export function dtypeBytes(dtype: DType): number {
  return dtype === 'F32' ? 4 : 2;
}

/** True on a little-endian host, where typed-array views already read the file's byte order. */
export const HOST_IS_LITTLE_ENDIAN = endianness() === 'LE';

/**
 * IEEE 754 binary16 bits to the number they denote, exactly (every half is a float32).
 * Handles signed zeros, subnormals (mantissa * 2^-24), infinities and NaN.
 */
export function halfBitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mantissa) * 2 ** (exponent - 25);
}

let halfTable: Float32Array | undefined;

/** All 65,536 halves as float32, built once (256 KB): one table look-up per element afterwards. */
function halfToFloatTable(): Float32Array {
  if (halfTable === undefined) {
    halfTable = new Float32Array(65536);
    for (let bits = 0; bits < 65536; bits++) halfTable[bits] = halfBitsToNumber(bits);
  }
  return halfTable;
}

/** The 16-bit words of `bytes` (little-endian), as a view when aligned on a little-endian host, else a copy. */
/**
 * The first `length` bytes in a fresh, aligned ArrayBuffer of exactly that size. Not
 * `bytes.slice()`: on a Node Buffer that is a view into the (pooled) source, not a copy.
 */
function copyBytes(bytes: Uint8Array, length: number): ArrayBuffer {
  const out = new Uint8Array(length);
  out.set(bytes.subarray(0, length));
  return out.buffer;
}

function readUint16LE(bytes: Uint8Array, count: number, hostLittleEndian: boolean): Uint16Array {
  if (hostLittleEndian) {
    if (bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, count);
    return new Uint16Array(copyBytes(bytes, count * 2));
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, count * 2);
  const words = new Uint16Array(count);
  for (let i = 0; i < count; i++) words[i] = view.getUint16(i * 2, true);
  return words;
}

/**
 * Widens `count` elements of `dtype`, stored little-endian in `bytes`, into a Float32Array.
 * The result does not alias `bytes` unless `mayAlias` allows it for F32; an offset that is not a
 * multiple of the element size is copied first, since typed-array views need aligned offsets.
 * @param bytes exactly count * dtypeBytes(dtype) bytes
 * @param mayAlias the caller owns `bytes` and will not reuse them, so F32 may be a view @default false
 * @param hostLittleEndian false takes the DataView path of big-endian hosts (tests run it here) @default the host's
 */
export function decodeToFloat32(bytes: Uint8Array, dtype: DType, count: number, mayAlias = false, hostLittleEndian = HOST_IS_LITTLE_ENDIAN): Float32Array {
  switch (dtype) {
    case 'F32': {
      if (hostLittleEndian) {
        if (mayAlias && bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, count);
        return new Float32Array(copyBytes(bytes, count * 4));
      }
      const view = new DataView(bytes.buffer, bytes.byteOffset, count * 4);
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
      return out;
    }
    case 'F16': {
      const words = readUint16LE(bytes, count, hostLittleEndian);
      const table = halfToFloatTable();
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = table[words[i]!]!;
      return out;
    }
    case 'BF16': {
      // bfloat16 is the upper half of a float32: shifting the bits up is exact, NaN and subnormals included.
      const words = readUint16LE(bytes, count, hostLittleEndian);
      const out = new Float32Array(count);
      const outBits = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) outBits[i] = words[i]! << 16;
      return out;
    }
    default: {
      const unreachable: never = dtype;
      throw new Error(`unreachable dtype ${String(unreachable)}`);
    }
  }
}

/**
 * The little-endian bytes of float32 data, as a zero-copy view on a little-endian host.
 * The caller must not mutate `data` until the bytes are written.
 * @param hostLittleEndian false takes the DataView path of big-endian hosts @default the host's
 */
export function float32LittleEndianBytes(data: Float32Array, hostLittleEndian = HOST_IS_LITTLE_ENDIAN): Uint8Array {
  if (hostLittleEndian) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i]!, true);
  return out;
}
