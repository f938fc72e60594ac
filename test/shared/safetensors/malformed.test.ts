import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isFedloraError } from '../../../shared/errors.js';
import { SafetensorsFile, decodeSafetensors, decodeSafetensorsHeader, readSafetensorsTensor } from '../../../shared/safetensors/index.js';
import { f32le, rawSafetensors, u64le } from './raw.js';

/** Runs `f`, expecting a FedloraError of `code` whose message holds every fragment. */
function expectCoded(f: () => unknown, code: string, ...fragments: string[]): void {
  let error: unknown;
  try {
    f();
  } catch (e) {
    error = e;
  }
  expect(isFedloraError(error), `expected ${code}, got ${String(error)}`).toBe(true);
  const e = error as Error & { code: string };
  expect(e.code, e.message).toBe(code);
  for (const fragment of fragments) expect(e.message).toContain(fragment);
}

const entry = (name: string, dtype: string, shape: number[], begin: number, end: number): string =>
  `${JSON.stringify(name)}:{"dtype":"${dtype}","shape":${JSON.stringify(shape)},"data_offsets":[${begin},${end}]}`;

describe('malformed safetensors buffers get coded errors that name the tensor and the problem', () => {
  it.each([
    ['an empty buffer', new Uint8Array(0), 'fewer than the 8-byte header length'],
    ['5 bytes', new Uint8Array(5), 'fewer than the 8-byte header length'],
    ['a header length beyond the end', rawSafetensors('{}', [], 100), 'header length 100'],
  ])('truncated: %s', (_what, bytes, fragment) => {
    expectCoded(() => decodeSafetensors(bytes), 'FL_ERR_SAFETENSORS_TRUNCATED', fragment);
  });

  it('truncated data names the first tensor cut off and the bytes missing', () => {
    const header = `{${entry('a', 'F32', [2], 0, 8)},${entry('b', 'F32', [2], 8, 16)},${entry('c', 'F32', [1], 16, 20)}}`;
    const bytes = rawSafetensors(header, f32le([1, 2, 3]));
    const dataStart = bytes.length - 12;
    expectCoded(() => decodeSafetensors(bytes), 'FL_ERR_SAFETENSORS_TRUNCATED', "tensor 'b' data ends at byte", `only ${bytes.length} bytes`, `describes ${dataStart + 20}`);
  });

  it('an absurd header length (> 100 MB, or 2^63) is refused before anything is read', () => {
    const huge = new Uint8Array([...u64le(100_000_001), 0x7b, 0x7d]);
    expectCoded(() => decodeSafetensors(huge), 'FL_ERR_SAFETENSORS_HEADER', '100 MB');
    expectCoded(() => decodeSafetensors(new Uint8Array([...u64le(2n ** 63n), 0x7b, 0x7d])), 'FL_ERR_SAFETENSORS_HEADER', '100 MB');
  });

  it.each([
    ['not UTF-8', Buffer.from([0x7b, 0xff, 0x7d]).toString('latin1'), 'UTF-8'],
    ['not JSON', '{"a": ', 'not JSON'],
    ['a JSON array', '[]', 'must be a JSON object, got an array'],
    ['JSON null', 'null', 'got null'],
    ['a JSON number', '42', 'got number'],
    ['an entry that is not an object', '{"w": 3}', "tensor 'w': entry must be an object"],
    ['a dtype that is not a string', '{"w":{"dtype":1,"shape":[1],"data_offsets":[0,4]}}', "tensor 'w': dtype must be a string"],
    ['a shape with a negative dimension', '{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', 'shape must be an array of non-negative integers'],
    ['a shape with a fraction', '{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}', 'shape must be'],
    ['a shape that is a string', '{"w":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}', 'shape must be'],
    ['three data_offsets', '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}', 'data_offsets must be two integers'],
    ['string data_offsets', '{"w":{"dtype":"F32","shape":[1],"data_offsets":["0","4"]}}', 'data_offsets must be two integers'],
    ['missing data_offsets', '{"w":{"dtype":"F32","shape":[1]}}', 'data_offsets must be two integers'],
    ['__metadata__ that is an array', '{"__metadata__":["a"]}', "'__metadata__' must be an object of strings"],
    ['a metadata value that is a number', '{"__metadata__":{"epoch":3}}', "'__metadata__.epoch' must be a string"],
    ['a duplicate name', `{${entry('w', 'F32', [1], 0, 4)},${entry('w', 'F32', [1], 4, 8)}}`, "name 'w' appears twice"],
    ['a duplicate name spelled with an escape', `{${entry('w', 'F32', [1], 0, 4)},"\\u0077":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, "name 'w' appears twice"],
  ])('header: %s', (_what, header, fragment) => {
    const latin = _what === 'not UTF-8';
    const bytes = latin ? new Uint8Array([...u64le(3), 0x7b, 0xff, 0x7d]) : rawSafetensors(header, f32le([1, 2]));
    expectCoded(() => decodeSafetensors(bytes), 'FL_ERR_SAFETENSORS_HEADER', fragment);
  });

  it('a header with duplicate keys only inside a tensor entry is not a duplicate name', () => {
    const header = '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":{"a":1,"a":2}},"v":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}';
    expect(decodeSafetensors(rawSafetensors(header, f32le([1, 2]))).tensors.map((t) => t.name)).toEqual(['w', 'v']);
  });

  it('an unknown dtype is named, with its tensor', () => {
    expectCoded(() => decodeSafetensors(rawSafetensors(`{${entry('w', 'F128', [1], 0, 16)}}`, new Uint8Array(16))), 'FL_ERR_SAFETENSORS_DTYPE', "tensor 'w'", "unknown dtype 'F128'");
  });

  it('a dtype of the format that fedlora does not read: the header is fine, reading the tensor names it', () => {
    const bytes = rawSafetensors(`{${entry('pos', 'I64', [2], 0, 16)},${entry('w', 'F32', [1], 16, 20)}}`, [...new Uint8Array(16), ...f32le([7])]);
    expect(decodeSafetensorsHeader(bytes).tensors.map((t) => t.dtype)).toEqual(['I64', 'F32']);
    expectCoded(() => decodeSafetensors(bytes), 'FL_ERR_SAFETENSORS_DTYPE', "tensor 'pos' has dtype I64", 'F32, F16 and BF16');
  });

  it.each([
    ['negative offsets', `{${entry('w', 'F32', [1], -4, 0)}}`, 4, 'are negative'],
    ['end before begin', `{${entry('w', 'F32', [0], 4, 0)}}`, 4, 'ends before it begins'],
    ['overlapping tensors', `{${entry('a', 'F32', [2], 0, 8)},${entry('b', 'F32', [2], 4, 12)}}`, 12, "tensor 'b'", 'overlaps'],
    ['a gap between tensors', `{${entry('a', 'F32', [1], 0, 4)},${entry('b', 'F32', [1], 8, 12)}}`, 12, "tensor 'b'", 'gap of 4 bytes'],
    ['a first tensor that does not start at 0', `{${entry('a', 'F32', [1], 4, 8)}}`, 8, 'gap of 4 bytes after offset 0'],
    ['offsets that do not fit dtype x shape', `{${entry('a', 'F32', [2, 2], 0, 12)}}`, 12, "tensor 'a'", 'span 12 bytes, but F32 [2, 2] needs 16'],
    ['F16 offsets sized as F32', `{${entry('h', 'F16', [3], 0, 12)}}`, 12, 'F16 [3] needs 6'],
    ['bytes after the last tensor', `{${entry('a', 'F32', [1], 0, 4)}}`, 8, '4 bytes after the last tensor'],
    ['a shape too large to count', `{${entry('a', 'F32', [2 ** 40, 2 ** 20], 0, 4)}}`, 4, 'too large'],
  ])('offsets: %s', (_what, header, dataBytes, ...fragments) => {
    expectCoded(() => decodeSafetensors(rawSafetensors(header, new Uint8Array(dataBytes as number))), 'FL_ERR_SAFETENSORS_OFFSETS', ...(fragments as string[]));
  });

  it('accepts what the format allows: leading whitespace, zero-size tensors, null metadata, unknown fields', () => {
    const header = ` {"__metadata__":null,${entry('e', 'F32', [0, 3], 0, 0)},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":true}}   `;
    const { tensors, metadata } = decodeSafetensors(rawSafetensors(header, f32le([5])));
    expect(metadata).toBeUndefined();
    expect(tensors.map((t) => [t.name, [...t.shape], [...t.data]])).toEqual([
      ['e', [0, 3], []],
      ['w', [1], [5]],
    ]);
  });

  it('keeps a metadata key named __proto__ as a plain key', () => {
    const { metadata } = decodeSafetensors(rawSafetensors('{"__metadata__":{"__proto__":"x"}}'));
    expect(Object.keys(metadata!)).toEqual(['__proto__']);
    expect(metadata!['__proto__']).toBe('x');
  });
});

describe('malformed files: the same errors, naming the file', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fl-malformed-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a missing file is FL_ERR_IO naming it', async () => {
    const path = join(dir, 'missing.safetensors');
    await expect(SafetensorsFile.open(path)).rejects.toMatchObject({ code: 'FL_ERR_IO', message: expect.stringContaining(path) });
    // the fs error is kept as the cause, with its errno code
    await expect(SafetensorsFile.open(path)).rejects.toMatchObject({ cause: { code: 'ENOENT' } });
  });

  it('a truncated file, a bad header and a missing tensor name the path', async () => {
    const truncated = join(dir, 'truncated.safetensors');
    await writeFile(truncated, rawSafetensors(`{${entry('w', 'F32', [4], 0, 16)}}`, f32le([1, 2])));
    await expect(SafetensorsFile.open(truncated)).rejects.toMatchObject({ code: 'FL_ERR_SAFETENSORS_TRUNCATED', message: expect.stringContaining(truncated) });

    const short = join(dir, 'short.safetensors');
    await writeFile(short, new Uint8Array([1, 2, 3]));
    await expect(SafetensorsFile.open(short)).rejects.toMatchObject({ code: 'FL_ERR_SAFETENSORS_TRUNCATED', message: expect.stringContaining('3 bytes') });

    const notJson = join(dir, 'not-json.safetensors');
    await writeFile(notJson, rawSafetensors('{oops}'));
    await expect(SafetensorsFile.open(notJson)).rejects.toMatchObject({ code: 'FL_ERR_SAFETENSORS_HEADER', message: expect.stringContaining(notJson) });

    const good = join(dir, 'good.safetensors');
    await writeFile(good, rawSafetensors(`{${entry('w', 'F32', [1], 0, 4)}}`, f32le([1])));
    await expect(readSafetensorsTensor(good, 'nope')).rejects.toMatchObject({ code: 'FL_ERR_SAFETENSORS_MISSING_TENSOR', message: expect.stringContaining("no tensor named 'nope'") });
  });
});
