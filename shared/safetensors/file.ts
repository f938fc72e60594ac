/**
 * Safetensors files without loading them whole: the header is read on its own, each tensor with a
 * positioned read of exactly its bytes, and the writer streams each tensor's bytes to its offset
 * (the header is known up front from names and shapes), so neither side ever holds more than one
 * tensor. Writes go to a temporary file renamed into place, so a crash never leaves half a file.
 */
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { FedloraError } from '../errors.js';
import { numel, type Tensor } from '../tensor.js';
import { checkWritable, tensorFromBytes, type DecodedSafetensors } from './codec.js';
import { float32LittleEndianBytes } from './dtype.js';
import {
  LENGTH_PREFIX_BYTES,
  lengthPrefix,
  parseHeader,
  parseHeaderLength,
  planLayout,
  type SafetensorsHeader,
  type SafetensorsTensorInfo,
} from './header.js';

/** Wraps a Node fs error as FL_ERR_IO naming the file and the operation. */
function ioError(path: string, action: string, e: unknown): FedloraError {
  const err = e as NodeJS.ErrnoException;
  return new FedloraError('FL_ERR_IO', `${path}: cannot ${action} (${err.code ?? err.message})`, { path, errno: err.code }, { cause: e });
}

/** Bytes per read or write call: Node refuses single calls above 2 GiB - 1. */
const IO_CHUNK_BYTES = 1 << 30;

/** Reads exactly `length` bytes at `position`, looping over short reads. */
async function readExactly(handle: FileHandle, path: string, position: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.read(out, done, Math.min(length - done, IO_CHUNK_BYTES), position + done));
    } catch (e) {
      throw ioError(path, 'read', e);
    }
    if (bytesRead === 0) {
      throw new FedloraError('FL_ERR_SAFETENSORS_TRUNCATED', `${path}: file ended at byte ${position + done} while reading ${length} bytes at ${position}`, { path });
    }
    done += bytesRead;
  }
  return out;
}

/** An open safetensors file: its checked header, and tensors read one at a time. Close it when done. */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    readonly header: SafetensorsHeader,
    private readonly handle: FileHandle,
  ) {}

  /** Opens a file and reads and checks its header (not its data). */
  static async open(path: string): Promise<SafetensorsFile> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (e) {
      throw ioError(path, 'open', e);
    }
    try {
      let size: number;
      try {
        size = (await handle.stat()).size;
      } catch (e) {
        throw ioError(path, 'stat', e);
      }
      const prefix = await readExactly(handle, path, 0, Math.min(LENGTH_PREFIX_BYTES, size));
      const n = parseHeaderLength(prefix, size, path);
      const json = await readExactly(handle, path, LENGTH_PREFIX_BYTES, n);
      return new SafetensorsFile(path, parseHeader(json, size, path), handle);
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  /** The header entry of a tensor. @throws FL_ERR_SAFETENSORS_MISSING_TENSOR */
  info(name: string): SafetensorsTensorInfo {
    const info = this.header.byName.get(name);
    if (info === undefined) {
      throw new FedloraError('FL_ERR_SAFETENSORS_MISSING_TENSOR', `${this.path}: no tensor named '${name}' (it holds ${this.header.tensors.length})`, {
        path: this.path,
        tensor: name,
      });
    }
    return info;
  }

  /** Reads one tensor with a positioned read of its bytes only, widened to float32. */
  async read(name: string): Promise<Tensor> {
    const info = this.info(name);
    const bytes = await readExactly(this.handle, this.path, this.header.dataStart + info.begin, info.end - info.begin);
    // The buffer was allocated for this read alone, so F32 data can be a view on it (no second copy).
    return tensorFromBytes(info, bytes, this.path, true);
  }

  /** Yields every tensor in data order, one read each. */
  async *tensors(): AsyncGenerator<Tensor> {
    for (const info of this.header.tensors) yield await this.read(info.name);
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/** Reads and checks the header of a safetensors file, without its data. */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const file = await SafetensorsFile.open(path);
  await file.close();
  return file.header;
}

/** Reads one tensor by name from a file (header plus that tensor's bytes only). */
export async function readSafetensorsTensor(path: string, name: string): Promise<Tensor> {
  const file = await SafetensorsFile.open(path);
  try {
    return await file.read(name);
  } finally {
    await file.close();
  }
}

/** Yields the tensors of a file in data order, holding one at a time; the file closes when the loop ends. */
export async function* iterateSafetensors(path: string): AsyncGenerator<Tensor> {
  const file = await SafetensorsFile.open(path);
  try {
    yield* file.tensors();
  } finally {
    await file.close();
  }
}

/** Reads every tensor of a file (for small files such as adapters). */
export async function readSafetensorsFile(path: string): Promise<DecodedSafetensors> {
  const file = await SafetensorsFile.open(path);
  try {
    const tensors: Tensor[] = [];
    for await (const t of file.tensors()) tensors.push(t);
    return { tensors, metadata: file.header.metadata };
  } finally {
    await file.close();
  }
}

/** A tensor the writer expects: F32 of this shape. */
export interface WriterTensorSpec {
  readonly name: string;
  readonly shape: readonly number[];
}

/**
 * Streams F32 tensors into a safetensors file whose header is fixed at open. Each tensor's data is
 * written to its own offset, in any tensor order and in consecutive chunks, so a caller can
 * produce a large tensor piecewise. `close()` checks that every tensor was written in full and
 * renames the temporary file into place; `abort()` removes it.
 */
export class SafetensorsFileWriter {
  private readonly written = new Map<string, number>();
  private finished = false;

  private constructor(
    readonly path: string,
    private readonly tempPath: string,
    private readonly handle: FileHandle,
    private readonly dataStart: number,
    private readonly byName: ReadonlyMap<string, SafetensorsTensorInfo>,
    /** Tensor names in the order of their data in the file. */
    readonly order: readonly string[],
  ) {}

  /**
   * Opens a writer and writes the header.
   * @param metadata the `__metadata__` map; omitted when undefined
   */
  static async open(path: string, specs: readonly WriterTensorSpec[], metadata?: Readonly<Record<string, string>>): Promise<SafetensorsFileWriter> {
    const layout = planLayout(specs.map((s) => ({ name: s.name, dtype: 'F32', shape: s.shape })), metadata);
    const tempPath = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    let handle: FileHandle;
    try {
      handle = await open(tempPath, 'w');
    } catch (e) {
      throw ioError(tempPath, 'create', e);
    }
    const writer = new SafetensorsFileWriter(
      path,
      tempPath,
      handle,
      LENGTH_PREFIX_BYTES + layout.headerBytes.length,
      new Map(layout.tensors.map((t) => [t.name, t])),
      layout.tensors.map((t) => t.name),
    );
    try {
      await writer.writeAt(lengthPrefix(layout.headerBytes.length), 0);
      await writer.writeAt(layout.headerBytes, LENGTH_PREFIX_BYTES);
    } catch (e) {
      await writer.abort();
      throw e;
    }
    return writer;
  }

  /**
   * Writes `data` as the elements of tensor `name` starting at `startElement`; chunks of a tensor
   * must come in order (each starts where the previous one ended).
   * @param startElement @default 0
   */
  async write(name: string, data: Float32Array, startElement = 0): Promise<void> {
    if (this.finished) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `${this.path}: write after close`);
    const info = this.byName.get(name);
    if (info === undefined) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `${this.path}: tensor '${name}' is not in the header`, { tensor: name });
    const done = this.written.get(name) ?? 0;
    const total = numel(info.shape);
    if (startElement !== done) {
      throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `${this.path}: tensor '${name}': chunk starts at element ${startElement}, expected ${done}`, { tensor: name });
    }
    if (done + data.length > total) {
      throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `${this.path}: tensor '${name}' [${info.shape.join(', ')}] holds ${total} values, got ${done + data.length}`, { tensor: name });
    }
    await this.writeAt(float32LittleEndianBytes(data), this.dataStart + info.begin + done * 4);
    this.written.set(name, done + data.length);
  }

  /** Checks every tensor was written in full, then moves the file into place. */
  async close(): Promise<void> {
    if (this.finished) return;
    for (const [name, info] of this.byName) {
      const done = this.written.get(name) ?? 0;
      if (done !== numel(info.shape)) {
        await this.abort();
        throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `${this.path}: tensor '${name}' got ${done} of its ${numel(info.shape)} values before close`, { tensor: name });
      }
    }
    this.finished = true;
    try {
      await this.handle.close();
      await rename(this.tempPath, this.path);
    } catch (e) {
      await rm(this.tempPath, { force: true });
      throw ioError(this.path, 'write', e);
    }
  }

  /** Discards the file. */
  async abort(): Promise<void> {
    if (!this.finished) {
      this.finished = true;
      await this.handle.close().catch(() => undefined);
    }
    await rm(this.tempPath, { force: true });
  }

  private async writeAt(bytes: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
      try {
        const { bytesWritten } = await this.handle.write(bytes, done, Math.min(bytes.length - done, IO_CHUNK_BYTES), position + done);
        done += bytesWritten;
      } catch (e) {
        throw ioError(this.tempPath, 'write', e);
      }
    }
  }
}

/**
 * Writes F32 tensors to a safetensors file, one tensor at a time (never one concatenated buffer),
 * laid out as the Python writer does.
 * @param metadata the `__metadata__` map; omitted when undefined
 */
export async function writeSafetensorsFile(path: string, tensors: readonly Tensor[], metadata?: Readonly<Record<string, string>>): Promise<void> {
  for (const t of tensors) checkWritable(t);
  const writer = await SafetensorsFileWriter.open(path, tensors, metadata);
  try {
    const byName = new Map(tensors.map((t) => [t.name, t]));
    for (const name of writer.order) await writer.write(name, byName.get(name)!.data);
  } catch (e) {
    await writer.abort();
    throw e;
  }
  await writer.close();
}
