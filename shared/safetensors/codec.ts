/**
 * Safetensors in memory, for the wire: `encodeSafetensors` builds one buffer the way the Python
 * writer lays a file out; `decodeSafetensors` checks and reads one. For files, use file.ts, which
 * neither loads nor builds a whole file in memory.
 */
import { FedloraError } from '../errors.js';
import { makeTensor, type Tensor } from '../tensor.js';
import { decodeToFloat32, dtypeBytes, float32LittleEndianBytes, isReadableDtype } from './dtype.js';
import {
  LENGTH_PREFIX_BYTES,
  lengthPrefix,
  parseHeader,
  parseHeaderLength,
  planLayout,
  type SafetensorsHeader,
  type SafetensorsTensorInfo,
} from './header.js';

/** Tensors read from a safetensors buffer or file, in data order, with the header's metadata. */
export interface DecodedSafetensors {
  readonly tensors: readonly Tensor[];
  readonly metadata: Readonly<Record<string, string>> | undefined;
}

/** What the wire and error messages call an in-memory buffer. */
const BUFFER_SOURCE = 'safetensors buffer';

/**
 * Encodes F32 tensors as one safetensors buffer (Python layout: sorted by name, header padded to
 * 8 bytes with spaces, data contiguous and little-endian).
 * @param metadata the `__metadata__` map; omitted from the header when undefined
 */
export function encodeSafetensors(tensors: readonly Tensor[], metadata?: Readonly<Record<string, string>>): Uint8Array {
  for (const t of tensors) checkWritable(t);
  const layout = planLayout(tensors.map((t) => ({ name: t.name, dtype: 'F32', shape: t.shape })), metadata);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const dataStart = LENGTH_PREFIX_BYTES + layout.headerBytes.length;
  const out = new Uint8Array(dataStart + layout.dataLength);
  out.set(lengthPrefix(layout.headerBytes.length), 0);
  out.set(layout.headerBytes, LENGTH_PREFIX_BYTES);
  for (const info of layout.tensors) out.set(float32LittleEndianBytes(byName.get(info.name)!.data), dataStart + info.begin);
  return out;
}

/** Reads and checks the header of an in-memory safetensors buffer. */
export function decodeSafetensorsHeader(bytes: Uint8Array, source = BUFFER_SOURCE): SafetensorsHeader {
  const n = parseHeaderLength(bytes.subarray(0, LENGTH_PREFIX_BYTES), bytes.length, source);
  return parseHeader(bytes.subarray(LENGTH_PREFIX_BYTES, LENGTH_PREFIX_BYTES + n), bytes.length, source);
}

/**
 * Decodes every tensor of an in-memory safetensors buffer into float32 tensors (F16 and BF16 are
 * widened). The tensors never alias `bytes`.
 * @throws FedloraError FL_ERR_SAFETENSORS_* naming the tensor and the problem
 */
export function decodeSafetensors(bytes: Uint8Array, source = BUFFER_SOURCE): DecodedSafetensors {
  const header = decodeSafetensorsHeader(bytes, source);
  const tensors = header.tensors.map((info) =>
    tensorFromBytes(info, bytes.subarray(header.dataStart + info.begin, header.dataStart + info.end), source),
  );
  return { tensors, metadata: header.metadata };
}

/**
 * Builds a Tensor from the bytes of one header entry.
 * @param bytes exactly the entry's data_offsets range
 * @param owned the bytes were read for this tensor alone, so F32 data may be a view on them @default false
 */
export function tensorFromBytes(info: SafetensorsTensorInfo, bytes: Uint8Array, source: string, owned = false): Tensor {
  if (!isReadableDtype(info.dtype)) {
    throw new FedloraError(
      'FL_ERR_SAFETENSORS_DTYPE',
      `${source}: tensor '${info.name}' has dtype ${info.dtype}; fedlora reads F32, F16 and BF16`,
      { source, tensor: info.name, dtype: info.dtype },
    );
  }
  const count = bytes.length / dtypeBytes(info.dtype);
  return makeTensor(info.name, info.shape, decodeToFloat32(bytes, info.dtype, count, owned));
}

/** Refuses a tensor whose data does not match its shape (it would write a file that cannot be read). */
export function checkWritable(t: Tensor): void {
  makeTensor(t.name, t.shape, t.data);
  if (!(t.data instanceof Float32Array)) {
    throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `tensor '${t.name}': data must be a Float32Array`, { tensor: t.name });
  }
}
