import { open, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  SafetensorsFile,
  SafetensorsFileWriter,
  encodeSafetensors,
  iterateSafetensors,
  readSafetensorsFile,
  readSafetensorsHeader,
  readSafetensorsTensor,
  writeSafetensorsFile,
} from '../../../shared/safetensors/index.js';
import { makeTensor, numel } from '../../../shared/tensor.js';
import { f32le, rawSafetensors } from './raw.js';

let dir: string;
let counter = 0;
const freshPath = (): string => join(dir, `t${counter++}.safetensors`);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fl-st-file-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const tensors = [
  makeTensor('model.layers.1.w', [3, 2], new Float32Array([1, 2, 3, 4, 5, 6])),
  makeTensor('model.layers.0.w', [2], new Float32Array([-1, 0.5])),
  makeTensor('scalar', [], new Float32Array([42])),
];

describe('safetensors files', () => {
  it('writeSafetensorsFile writes the same bytes as encodeSafetensors', async () => {
    const path = freshPath();
    await writeSafetensorsFile(path, tensors, { format: 'pt' });
    expect(Buffer.from(encodeSafetensors(tensors, { format: 'pt' })).equals(await readFile(path))).toBe(true);
  });

  it('reads back: the header alone, one tensor by name, every tensor in data order', async () => {
    const path = freshPath();
    await writeSafetensorsFile(path, tensors, { k: 'v' });
    const header = await readSafetensorsHeader(path);
    expect(header.metadata).toEqual({ k: 'v' });
    expect(header.tensors.map((t) => [t.name, t.begin, t.end])).toEqual([
      ['model.layers.0.w', 0, 8],
      ['model.layers.1.w', 8, 32],
      ['scalar', 32, 36],
    ]);
    expect(await readSafetensorsTensor(path, 'model.layers.1.w')).toEqual(tensors[0]);
    const seen = [];
    for await (const t of iterateSafetensors(path)) seen.push(t);
    expect(seen).toEqual([tensors[1], tensors[0], tensors[2]]);
    expect((await readSafetensorsFile(path)).tensors).toEqual(seen);
  });

  it('each read returns its own array: changing one read does not change the next', async () => {
    const path = freshPath();
    await writeSafetensorsFile(path, tensors);
    const file = await SafetensorsFile.open(path);
    try {
      const first = await file.read('model.layers.1.w');
      first.data.fill(0);
      expect((await file.read('model.layers.1.w')).data).toEqual(tensors[0]!.data);
    } finally {
      await file.close();
    }
  });

  it('reads one tensor of an 8 GiB (sparse) file without loading the file', async () => {
    // A whole-file read could not even allocate this (Node buffers stop at 4 GiB); positioned reads touch 8 bytes of data.
    const path = freshPath();
    const big = 2 ** 31; // F32 elements: 8 GiB, twice what one Node buffer can hold
    const header = `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"huge":{"dtype":"F32","shape":[${big}],"data_offsets":[8,${8 + big * 4}]}}`;
    const head = rawSafetensors(header, f32le([3.5, -7]));
    await writeFile(path, head);
    const handle = await open(path, 'r+');
    await handle.truncate(head.length + big * 4);
    await handle.close();
    const file = await SafetensorsFile.open(path);
    try {
      expect(file.header.dataLength).toBe(8 + big * 4);
      expect([...(await file.read('a')).data]).toEqual([3.5, -7]);
    } finally {
      await file.close();
    }
  });

  it('the streaming writer takes tensors in any order and in chunks, and matches the one-shot writer', async () => {
    const path = freshPath();
    const writer = await SafetensorsFileWriter.open(path, tensors, { format: 'pt' });
    expect(writer.order).toEqual(['model.layers.0.w', 'model.layers.1.w', 'scalar']);
    await writer.write('scalar', tensors[2]!.data);
    await writer.write('model.layers.1.w', tensors[0]!.data.subarray(0, 4));
    await writer.write('model.layers.0.w', tensors[1]!.data);
    await writer.write('model.layers.1.w', tensors[0]!.data.subarray(4), 4);
    await writer.close();
    expect(Buffer.from(encodeSafetensors(tensors, { format: 'pt' })).equals(await readFile(path))).toBe(true);
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('the streaming writer refuses out-of-order chunks, overflow and unknown names, and an incomplete file is never left behind', async () => {
    const path = freshPath();
    const writer = await SafetensorsFileWriter.open(path, tensors);
    await expect(writer.write('model.layers.1.w', new Float32Array(2), 2)).rejects.toMatchObject({ code: 'FL_ERR_INVALID_ARGUMENT', message: expect.stringContaining('expected 0') });
    await expect(writer.write('model.layers.1.w', new Float32Array(7))).rejects.toMatchObject({ code: 'FL_ERR_SHAPE_MISMATCH', message: expect.stringContaining('holds 6 values') });
    await expect(writer.write('other', new Float32Array(1))).rejects.toMatchObject({ code: 'FL_ERR_INVALID_ARGUMENT', message: expect.stringContaining("'other'") });
    await writer.write('model.layers.1.w', new Float32Array(6));
    await expect(writer.close()).rejects.toMatchObject({ code: 'FL_ERR_SHAPE_MISMATCH', message: expect.stringContaining("'model.layers.0.w' got 0 of its 2 values") });
    expect(await readdir(dir)).not.toContain(path.split('/').pop());
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('a write into a directory that does not exist is FL_ERR_IO naming the path', async () => {
    const path = join(dir, 'no', 'such', 'dir', 'x.safetensors');
    await expect(writeSafetensorsFile(path, tensors)).rejects.toMatchObject({ code: 'FL_ERR_IO', message: expect.stringContaining(join(dir, 'no', 'such', 'dir')) });
  });

  it('property: random shapes survive a file round trip, read whole and by name', async () => {
    const shapeArb = fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 3 });
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(fc.tuple(fc.stringMatching(/^[a-z][a-z0-9_.]{0,10}$/), shapeArb), { selector: ([n]) => n, minLength: 1, maxLength: 6 }), async (specs) => {
        const list = specs.map(([name, shape], k) => makeTensor(name, shape, Float32Array.from({ length: numel(shape) }, (_, i) => k * 100 + i / 8)));
        const path = freshPath();
        await writeSafetensorsFile(path, list);
        const back = await readSafetensorsFile(path);
        expect(new Map(back.tensors.map((t) => [t.name, t]))).toEqual(new Map(list.map((t) => [t.name, t])));
        const pick = list[list.length - 1]!;
        expect(await readSafetensorsTensor(path, pick.name)).toEqual(pick);
        await rm(path);
      }),
      { numRuns: 40 },
    );
  });
});
