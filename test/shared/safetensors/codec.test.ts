import { readFile } from 'node:fs/promises';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeSafetensors, decodeSafetensorsHeader, encodeSafetensors } from '../../../shared/safetensors/index.js';
import { makeTensor, numel, type Tensor } from '../../../shared/tensor.js';

/** The tensors of out/formats-check/make.ts: names whose order differs between UTF-8 and UTF-16, integer-like names. */
function trickyTensors(): Tensor[] {
  const names = ['b', '10', '2', 'a.weight', 'B', 'é', '\u{1F600}', '\uFF5E', 'z'];
  return names.map((n, i) => {
    const shape = i % 3 === 0 ? [i + 1] : i % 3 === 1 ? [2, i] : [];
    return makeTensor(n, shape, new Float32Array(numel(shape)).map((_, j) => i * 10 + j + 0.5));
  });
}

describe('encodeSafetensors layout', () => {
  it('is byte-identical to what Python safetensors 0.8.0 save_file wrote for the same tensors', async () => {
    // data/python-resaved-names.safetensors: fedlora's file loaded and re-saved by the reference writer
    // on the GPU machine (torch 2.11, safetensors 0.8.0); it was byte-identical to ours there too.
    const reference = await readFile(new URL('./data/python-resaved-names.safetensors', import.meta.url));
    const ours = encodeSafetensors(trickyTensors(), { format: 'pt' });
    expect(Buffer.from(ours).equals(reference)).toBe(true);
  });

  it('orders names by UTF-8 bytes (U+FF5E before U+1F600, unlike UTF-16 order) and keeps integer-like names in that order', () => {
    const header = decodeSafetensorsHeader(encodeSafetensors(trickyTensors()));
    expect(header.tensors.map((t) => t.name)).toEqual(['10', '2', 'B', 'a.weight', 'b', 'z', 'é', '\uFF5E', '\u{1F600}']);
  });

  it('puts __metadata__ first with sorted keys, pads with spaces to 8 bytes, packs data from offset 0', () => {
    const bytes = encodeSafetensors([makeTensor('w', [1], new Float32Array([2]))], { z: '1', a: 'x"y' });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const text = Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8');
    expect(text.trimEnd()).toBe('{"__metadata__":{"a":"x\\"y","z":"1"},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}');
    expect(text.slice(text.trimEnd().length)).toMatch(/^ *$/);
    expect(bytes.length).toBe(8 + n + 4);
  });

  it('refuses duplicate names, the reserved name and data that does not match the shape', () => {
    const t = makeTensor('x', [2]);
    expect(() => encodeSafetensors([t, t])).toThrow(/FL_ERR_INVALID_ARGUMENT.*'x' is given twice/);
    expect(() => encodeSafetensors([makeTensor('__metadata__', [1])])).toThrow(/FL_ERR_INVALID_ARGUMENT/);
    expect(() => encodeSafetensors([{ name: 'y', shape: [3], dtype: 'F32', data: new Float32Array(2) }])).toThrow(/FL_ERR_SHAPE_MISMATCH.*'y'/);
    expect(() => encodeSafetensors([makeTensor('\uD800', [1])])).toThrow(/not valid Unicode/);
  });
});

describe('encode / decode round trips', () => {
  it('keeps -0, subnormals, infinities and NaN bit for bit', () => {
    const data = new Float32Array([-0, 1e-45, -Infinity, Infinity, NaN, 3.4028234663852886e38]);
    const bits = new Uint32Array(data.buffer).slice();
    const { tensors } = decodeSafetensors(encodeSafetensors([makeTensor('v', [2, 3], data)]));
    expect([...new Uint32Array(tensors[0]!.data.buffer)]).toEqual([...bits]);
  });

  it('decoded tensors do not alias the input bytes', () => {
    const bytes = encodeSafetensors([makeTensor('v', [2], new Float32Array([1, 2]))]);
    const { tensors } = decodeSafetensors(bytes);
    bytes.fill(0, bytes.length - 8);
    expect([...tensors[0]!.data]).toEqual([1, 2]);
  });

  const shapeArb = fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 0, maxLength: 4 });
  const tensorsArb = fc.uniqueArray(fc.record({ name: fc.string({ minLength: 0, maxLength: 12 }), shape: shapeArb, seed: fc.integer() }), {
    selector: (t) => t.name,
    maxLength: 8,
  });
  const metadataArb = fc.option(fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 16 }), { maxKeys: 4 }), { nil: undefined });

  it('property: decode(encode(tensors, metadata)) gives back every tensor and the metadata', () => {
    fc.assert(
      fc.property(tensorsArb, metadataArb, (specs, metadata) => {
        const named = specs.filter((s) => s.name !== '__metadata__' && Buffer.from(s.name).toString() === s.name);
        const tensors = named.map((s) => makeTensor(s.name, s.shape, Float32Array.from({ length: numel(s.shape) }, (_, i) => Math.fround(Math.sin(s.seed + i) * 1e3))));
        const bytes = encodeSafetensors(tensors, metadata);
        const decoded = decodeSafetensors(bytes);
        expect(decoded.metadata).toEqual(metadata === undefined ? undefined : { ...metadata });
        const byName = new Map(decoded.tensors.map((t) => [t.name, t]));
        expect(byName.size).toBe(tensors.length);
        for (const t of tensors) {
          expect(byName.get(t.name)!.shape).toEqual(t.shape);
          expect(byName.get(t.name)!.data).toEqual(t.data);
        }
        // The data buffer starts 8-aligned and is exactly the tensors' bytes.
        const header = decodeSafetensorsHeader(bytes);
        expect(header.dataStart % 8).toBe(0);
        expect(header.dataLength).toBe(tensors.reduce((n, t) => n + 4 * t.data.length, 0));
      }),
      { numRuns: 200 },
    );
  });
});
