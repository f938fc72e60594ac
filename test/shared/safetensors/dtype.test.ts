import { describe, expect, it } from 'vitest';
import { decodeToFloat32, float32LittleEndianBytes, halfBitsToNumber } from '../../../shared/safetensors/dtype.js';

/**
 * An independent binary16 decoder (another algorithm than the one under test): move the 15
 * exponent+mantissa bits into float32 position and rescale by 2^112 (the exponent bias difference,
 * 127 - 15), which is exact for normals and subnormals alike; exponent 31 maps to inf / NaN.
 * Checked once against numpy's float16 -> float32 table for all 65,536 patterns (0 mismatches).
 */
function referenceHalf(bits: number): number {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  u[0] = (bits & 0x7fff) << 13;
  let value = f[0]! * 2 ** 112;
  if ((bits & 0x7c00) === 0x7c00) {
    u[0] = ((bits & 0x7fff) << 13) | 0x7f800000;
    value = f[0]!;
  }
  return bits & 0x8000 ? -value : value;
}

/** Little-endian bytes of 16-bit words, at a byte offset (to test unaligned input). */
function wordsLE(words: readonly number[], offset = 0): Uint8Array {
  const buffer = new Uint8Array(offset + words.length * 2);
  const view = new DataView(buffer.buffer);
  words.forEach((w, i) => view.setUint16(offset + i * 2, w, true));
  return buffer.subarray(offset);
}

describe('F16', () => {
  it('hand-computed values: zeros, subnormals, normals, max, infinities, NaN', () => {
    expect(Object.is(halfBitsToNumber(0x0000), 0)).toBe(true);
    expect(Object.is(halfBitsToNumber(0x8000), -0)).toBe(true);
    expect(halfBitsToNumber(0x0001)).toBe(2 ** -24); // smallest subnormal
    expect(halfBitsToNumber(0x03ff)).toBe(1023 * 2 ** -24); // largest subnormal
    expect(halfBitsToNumber(0x0400)).toBe(2 ** -14); // smallest normal
    expect(halfBitsToNumber(0x3c00)).toBe(1);
    expect(halfBitsToNumber(0xc000)).toBe(-2);
    expect(halfBitsToNumber(0x3555)).toBe(1365 / 4096);
    expect(halfBitsToNumber(0x7bff)).toBe(65504);
    expect(halfBitsToNumber(0x7c00)).toBe(Infinity);
    expect(halfBitsToNumber(0xfc00)).toBe(-Infinity);
    expect(halfBitsToNumber(0x7e00)).toBeNaN();
    expect(halfBitsToNumber(0xfc01)).toBeNaN();
  });

  it('all 65,536 patterns decode as the independent reference does, bit for bit', () => {
    const words = Array.from({ length: 65536 }, (_, i) => i);
    const decoded = decodeToFloat32(wordsLE(words), 'F16', 65536);
    const expected = Float32Array.from(words, referenceHalf);
    let mismatches = 0;
    for (let i = 0; i < 65536; i++) {
      const same = Number.isNaN(expected[i]!) ? Number.isNaN(decoded[i]!) : Object.is(decoded[i], expected[i]);
      if (!same) mismatches++;
    }
    expect(mismatches).toBe(0);
  });

  it('reads from an odd byte offset (unaligned) the same as aligned', () => {
    const words = [0x3c00, 0x0001, 0xfc00, 0x3555];
    expect(decodeToFloat32(wordsLE(words, 1), 'F16', 4)).toEqual(decodeToFloat32(wordsLE(words, 0), 'F16', 4));
    expect(wordsLE(words, 1).byteOffset % 2).toBe(1);
  });
});

describe('BF16', () => {
  it('is the upper half of a float32: signed zeros, subnormal, inf, NaN kept', () => {
    const words = [0x0000, 0x8000, 0x0001, 0x3f80, 0xc049, 0x7f80, 0xff80, 0x7fc0, 0x0080];
    const out = decodeToFloat32(wordsLE(words, 1), 'BF16', words.length);
    expect(Object.is(out[0], 0)).toBe(true);
    expect(Object.is(out[1], -0)).toBe(true);
    expect(out[2]).toBe(2 ** -133); // float32 subnormal 0x00010000
    expect([...out.subarray(3, 7)]).toEqual([1, -3.140625, Infinity, -Infinity]);
    expect(out[7]).toBeNaN();
    expect(out[8]).toBe(2 ** -126); // smallest normal float32
  });
});

describe('F32', () => {
  it('reads unaligned bytes into a fresh array that does not alias the input', () => {
    const values = new Float32Array([1.5, -0, 3e-45, Infinity]);
    const bytes = new Uint8Array(3 + 16);
    bytes.set(new Uint8Array(values.buffer), 3);
    const out = decodeToFloat32(bytes.subarray(3), 'F32', 4);
    expect(Object.is(out[1], -0)).toBe(true);
    expect([...out]).toEqual([...values]);
    bytes[3] = 0xff;
    expect(out[0]).toBe(1.5);
  });

  it('with mayAlias, aligned input becomes a zero-copy view; unaligned input is still copied', () => {
    const bytes = new Uint8Array(new Float32Array([1, 2]).buffer);
    const view = decodeToFloat32(bytes, 'F32', 2, true);
    bytes.set([0, 0, 0x40, 0x40], 0); // 3.0
    expect([...view]).toEqual([3, 2]);
    const odd = new Uint8Array(9);
    odd.set(new Uint8Array(new Float32Array([5, 6]).buffer), 1);
    expect([...decodeToFloat32(odd.subarray(1), 'F32', 2, true)]).toEqual([5, 6]);
  });

  it('writes little-endian bytes (1.0 is 00 00 80 3f)', () => {
    expect([...float32LittleEndianBytes(new Float32Array([1, -2]))]).toEqual([0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0]);
  });
});

describe('the DataView path of big-endian hosts (run here by forcing it)', () => {
  it('decodes F32, F16 and BF16 and encodes F32 exactly as the typed-array path does', () => {
    const words = Array.from({ length: 4096 }, (_, i) => (i * 40503) & 0xffff);
    for (const offset of [0, 1]) {
      for (const dtype of ['F16', 'BF16'] as const) {
        const fast = decodeToFloat32(wordsLE(words, offset), dtype, words.length);
        const portable = decodeToFloat32(wordsLE(words, offset), dtype, words.length, false, false);
        expect(new Uint32Array(portable.buffer)).toEqual(new Uint32Array(fast.buffer));
      }
      const f32 = wordsLE(words, offset); // 2048 float32 values
      expect(decodeToFloat32(f32, 'F32', 2048, false, false)).toEqual(decodeToFloat32(f32, 'F32', 2048));
    }
    const values = new Float32Array([1, -2, 3.5e-40, -0, Infinity]);
    expect([...float32LittleEndianBytes(values, false)]).toEqual([...float32LittleEndianBytes(values)]);
  });
});

describe('decodeToFloat32 on Node Buffers', () => {
  it('copies out of a pooled Buffer instead of viewing the whole pool (Buffer#slice is a view)', () => {
    // Buffer.from(array) of a small size lands in Node's shared 8 KiB pool at an offset.
    const values = new Float32Array([1.5, -2.25, 3.125]);
    const pooled = Buffer.from(new Uint8Array(values.buffer));
    const unaligned = Buffer.concat([Buffer.from([7]), pooled]).subarray(1);
    for (const bytes of [pooled, unaligned]) {
      const f32 = decodeToFloat32(bytes, 'F32', 3);
      expect(f32.length).toBe(3);
      expect(Array.from(f32)).toEqual([1.5, -2.25, 3.125]);
      expect(f32.buffer.byteLength).toBe(12);
    }
    const halves = Buffer.concat([Buffer.from([0]), Buffer.from([0x00, 0x3c, 0x00, 0xc0])]).subarray(1);
    expect(Array.from(decodeToFloat32(halves, 'F16', 2))).toEqual([1, -2]);
  });
});
