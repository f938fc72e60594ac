import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeSafetensors, encodeSafetensors, readSafetensorsFile, readSafetensorsTensor } from '../../../shared/safetensors/index.js';
import { makeTensor } from '../../../shared/tensor.js';

/**
 * A file laid out as Python's `safetensors` writes it, written here byte by byte from the spec
 * (not with fedlora's writer): tensors sorted by dtype alignment descending (F32, then BF16, then
 * F16), then by name; compact JSON with `__metadata__` first; the header padded with spaces to a
 * multiple of 8; data contiguous, little-endian, row-major.
 */
const HEADER_JSON =
  '{"__metadata__":{"format":"pt"},' +
  '"empty":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},' +
  '"weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
  '"bf":{"dtype":"BF16","shape":[2,2],"data_offsets":[8,16]},' +
  '"half":{"dtype":"F16","shape":[2,3],"data_offsets":[16,28]},' +
  '"z_scalar":{"dtype":"F16","shape":[],"data_offsets":[28,30]}}';

const FIXTURE = new Uint8Array([
  // N = 328 = 0x148: the 326-byte JSON plus 2 spaces of padding, as a little-endian u64.
  0x48, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  ...Buffer.from(HEADER_JSON, 'ascii'),
  0x20, 0x20,
  // weight (F32): 1.0 = 0x3f800000, -2.5 = 0xc0200000
  0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x20, 0xc0,
  // bf (BF16): 1.0 = 0x3f80, -3.140625 = 0xc049, +inf = 0x7f80, 2^-133 = 0x0001 (a float32 subnormal)
  0x80, 0x3f, 0x49, 0xc0, 0x80, 0x7f, 0x01, 0x00,
  // half (F16): 1.0 = 0x3c00, 2^-24 = 0x0001 (smallest subnormal), 1023 * 2^-24 = 0x03ff (largest subnormal),
  // 65504 = 0x7bff (largest finite), -inf = 0xfc00, NaN = 0x7e00
  0x00, 0x3c, 0x01, 0x00, 0xff, 0x03, 0xff, 0x7b, 0x00, 0xfc, 0x00, 0x7e,
  // z_scalar (F16, shape []): 0x3555 = 1365/4096 = 0.333251953125
  0x55, 0x35,
]);

describe('a safetensors file written by hand from the spec (Python layout, F32 + BF16 + F16)', () => {
  it('has the length the hand count says', () => {
    expect(HEADER_JSON.length).toBe(326);
    expect(FIXTURE.length).toBe(8 + 328 + 30);
  });

  it('decodes every tensor, widening BF16 and F16 exactly', () => {
    const { tensors, metadata } = decodeSafetensors(FIXTURE);
    expect(metadata).toEqual({ format: 'pt' });
    expect(tensors.map((t) => t.name)).toEqual(['empty', 'weight', 'bf', 'half', 'z_scalar']);
    const byName = new Map(tensors.map((t) => [t.name, t]));
    expect(byName.get('empty')!.shape).toEqual([0]);
    expect(byName.get('empty')!.data.length).toBe(0);
    expect([...byName.get('weight')!.data]).toEqual([1, -2.5]);
    expect(byName.get('bf')!.shape).toEqual([2, 2]);
    expect([...byName.get('bf')!.data]).toEqual([1, -3.140625, Infinity, 2 ** -133]);
    const half = byName.get('half')!;
    expect(half.shape).toEqual([2, 3]);
    expect([...half.data.subarray(0, 5)]).toEqual([1, 2 ** -24, 1023 * 2 ** -24, 65504, -Infinity]);
    expect(Number.isNaN(half.data[5])).toBe(true);
    expect(byName.get('z_scalar')!.shape).toEqual([]);
    expect([...byName.get('z_scalar')!.data]).toEqual([0.333251953125]);
    for (const t of tensors) expect(t.dtype).toBe('F32');
  });

  it('reads the same tensors from a file, whole and by name', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fl-fixture-'));
    try {
      const path = join(dir, 'hand.safetensors');
      await writeFile(path, FIXTURE);
      const whole = await readSafetensorsFile(path);
      expect(whole).toEqual(decodeSafetensors(FIXTURE));
      const half = await readSafetensorsTensor(path, 'half');
      expect([...half.data.subarray(0, 4)]).toEqual([1, 2 ** -24, 1023 * 2 ** -24, 65504]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the writer reproduces Python layouts byte for byte (F32, written by hand here)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fl-fixture-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a 64-byte header needs no padding', () => {
    const json = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
    const expected = new Uint8Array([
      64, 0, 0, 0, 0, 0, 0, 0,
      ...Buffer.from(json, 'ascii'),
      0, 0, 0, 0, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40, 0, 0, 0x80, 0x40, 0, 0, 0xa0, 0x40,
    ]);
    const bytes = encodeSafetensors([makeTensor('attn.0', [1, 2, 3], new Float32Array([0, 1, 2, 3, 4, 5]))]);
    expect(Buffer.from(bytes).equals(Buffer.from(expected))).toBe(true);
  });

  it('a 65-byte header gets 7 spaces so the data starts 8-aligned', () => {
    const json = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}';
    expect(json.length).toBe(65);
    const expected = new Uint8Array([
      72, 0, 0, 0, 0, 0, 0, 0,
      ...Buffer.from(json, 'ascii'),
      0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
      0, 0, 0, 0, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40, 0, 0, 0x80, 0x40, 0, 0, 0xa0, 0x40,
    ]);
    const bytes = encodeSafetensors([makeTensor('attn0', [1, 1, 2, 3], new Float32Array([0, 1, 2, 3, 4, 5]))]);
    expect(Buffer.from(bytes).equals(Buffer.from(expected))).toBe(true);
  });

  it('no tensors: {} and 6 spaces; with metadata, __metadata__ alone', () => {
    expect([...encodeSafetensors([])]).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20]);
    const json = '{"__metadata__":{"framework":"pt"}}';
    expect([...encodeSafetensors([], { framework: 'pt' })]).toEqual([40, 0, 0, 0, 0, 0, 0, 0, ...Buffer.from(json, 'ascii'), 0x20, 0x20, 0x20, 0x20, 0x20]);
  });
});

describe('a file written by Python safetensors 0.8.0 (torch save_file on the GPU machine)', () => {
  const data = new URL('./data/', import.meta.url);

  it('reads every tensor with the values Python printed (F32, F16 with subnormals/inf/NaN, BF16)', async () => {
    const expected = JSON.parse(await readFile(new URL('python-written.json', data), 'utf8')) as {
      shapes: Record<string, number[]>;
      values: Record<string, Array<number | string | null>>;
    };
    const { tensors, metadata } = await readSafetensorsFile(new URL('python-written.safetensors', data).pathname);
    expect(metadata).toEqual({ format: 'pt' });
    // Python's layout: F32 tensors by name, then BF16, then F16 by name.
    expect(tensors.map((t) => t.name)).toEqual(['a.f32', 'model.embed.weight', 'bf.values', 'half.values', 'scalar']);
    for (const t of tensors) {
      expect(t.shape).toEqual(expected.shapes[t.name]);
      const want = expected.values[t.name]!.map((v) => (v === null ? NaN : v === 'inf' ? Infinity : v === '-inf' ? -Infinity : v));
      expect(t.data.length).toBe(want.length);
      // Python printed float32 values as exact doubles, so equality (Object.is keeps -0 apart) is the test.
      want.forEach((w, i) => expect(Object.is(t.data[i], w) || (Number.isNaN(w) && Number.isNaN(t.data[i]!))).toBe(true));
    }
  });
});
