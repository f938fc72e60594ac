/**
 * The safetensors header: an 8-byte little-endian length N, then N bytes of JSON
 * `{"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}, ...}`.
 * This file parses and checks one (every rule of the reference reader, plus duplicate names,
 * which it lets through) and builds one the way the Python `safetensors` writer does.
 */
import { FedloraError } from '../errors.js';
import { firstDuplicateKey } from '../json-keys.js';
import { SAFETENSORS_DTYPE_BITS, dtypeAlignmentRank } from './dtype.js';

/** The reference implementation refuses headers above 100 MB; so do we, before reading them. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Bytes of the little-endian u64 that gives the header length. */
export const LENGTH_PREFIX_BYTES = 8;

/** One tensor of a header. Offsets are bytes relative to the start of the data buffer. */
export interface SafetensorsTensorInfo {
  readonly name: string;
  /** Any dtype the format defines; only F32, F16 and BF16 can be read into a Tensor. */
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsHeader {
  /** N, the JSON header's length in bytes (padding included). */
  readonly headerLength: number;
  /** 8 + N: where the data buffer starts. */
  readonly dataStart: number;
  /** Bytes of the data buffer: the end offset of the last tensor. */
  readonly dataLength: number;
  /** The tensors in the order of their data (by begin offset). */
  readonly tensors: readonly SafetensorsTensorInfo[];
  readonly byName: ReadonlyMap<string, SafetensorsTensorInfo>;
  /** The `__metadata__` map, or undefined when the header has none. */
  readonly metadata: Readonly<Record<string, string>> | undefined;
}

/** A tensor to lay out for writing. */
export interface TensorSpec {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
}

const METADATA_KEY = '__metadata__';

/**
 * Reads N from the first 8 bytes and checks it against the limit and the bytes available.
 * @param prefix at least the first 8 bytes of the file (fewer means the file is truncated)
 * @param totalBytes size of the whole file or buffer
 * @param source the file path or a description, for messages
 */
export function parseHeaderLength(prefix: Uint8Array, totalBytes: number, source: string): number {
  if (prefix.length < LENGTH_PREFIX_BYTES || totalBytes < LENGTH_PREFIX_BYTES) {
    throw new FedloraError('FL_ERR_SAFETENSORS_TRUNCATED', `${source}: ${totalBytes} bytes, fewer than the 8-byte header length`, { source });
  }
  const length = new DataView(prefix.buffer, prefix.byteOffset, LENGTH_PREFIX_BYTES).getBigUint64(0, true);
  if (length > BigInt(MAX_HEADER_BYTES)) {
    throw new FedloraError('FL_ERR_SAFETENSORS_HEADER', `${source}: header length ${length} exceeds the 100 MB limit (not a safetensors file?)`, { source });
  }
  const n = Number(length);
  if (LENGTH_PREFIX_BYTES + n > totalBytes) {
    throw new FedloraError(
      'FL_ERR_SAFETENSORS_TRUNCATED',
      `${source}: header length ${n} reaches byte ${LENGTH_PREFIX_BYTES + n}, but there are only ${totalBytes} bytes`,
      { source },
    );
  }
  return n;
}

/**
 * Parses and checks the JSON header; then checks that its data buffer fills the rest of the
 * source exactly, as the reference reader does.
 * @param json the N header bytes
 * @param totalBytes size of the whole file or buffer, to check the data against
 */
export function parseHeader(json: Uint8Array, totalBytes: number, source: string): SafetensorsHeader {
  const headerError = (problem: string): FedloraError =>
    new FedloraError('FL_ERR_SAFETENSORS_HEADER', `${source}: ${problem}`, { source });
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(json);
  } catch {
    throw headerError('header is not valid UTF-8');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw headerError(`header is not JSON (${(e as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw headerError(`header must be a JSON object, got ${Array.isArray(parsed) ? 'an array' : parsed === null ? 'null' : typeof parsed}`);
  }
  // JSON.parse keeps the last of duplicate names silently, so the text itself is checked.
  const duplicate = firstDuplicateKey(text);
  if (duplicate !== undefined) throw headerError(`name '${duplicate}' appears twice in the header`);

  let metadata: Record<string, string> | undefined;
  const tensors: SafetensorsTensorInfo[] = [];
  for (const [name, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      if (value === null) continue;
      metadata = parseMetadata(value, headerError);
      continue;
    }
    tensors.push(parseTensorInfo(name, value, source));
  }

  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  const offsetsError = (problem: string): FedloraError =>
    new FedloraError('FL_ERR_SAFETENSORS_OFFSETS', `${source}: ${problem}`, { source });
  let expectedBegin = 0;
  for (const t of tensors) {
    const range = `data_offsets [${t.begin}, ${t.end}]`;
    if (t.end < t.begin) throw offsetsError(`tensor '${t.name}': ${range} ends before it begins`);
    if (t.begin < expectedBegin) throw offsetsError(`tensor '${t.name}': ${range} overlaps the tensor before it, which ends at ${expectedBegin}`);
    if (t.begin > expectedBegin) throw offsetsError(`tensor '${t.name}': ${range} leaves a gap of ${t.begin - expectedBegin} bytes after offset ${expectedBegin}`);
    const needed = byteSize(t, offsetsError);
    if (t.end - t.begin !== needed) {
      throw offsetsError(`tensor '${t.name}': ${range} span ${t.end - t.begin} bytes, but ${t.dtype} [${t.shape.join(', ')}] needs ${needed}`);
    }
    expectedBegin = t.end;
  }

  const headerLength = json.length;
  const dataStart = LENGTH_PREFIX_BYTES + headerLength;
  const dataLength = expectedBegin;
  if (dataStart + dataLength > totalBytes) {
    // Name the first tensor cut off: the ones before it are complete.
    const cut = tensors.find((t) => dataStart + t.end > totalBytes)!;
    throw new FedloraError(
      'FL_ERR_SAFETENSORS_TRUNCATED',
      `${source}: truncated: tensor '${cut.name}' data ends at byte ${dataStart + cut.end}, but there are only ${totalBytes} bytes (the header describes ${dataStart + dataLength})`,
      { source, tensor: cut.name },
    );
  }
  if (dataStart + dataLength < totalBytes) {
    throw offsetsError(`${totalBytes - dataStart - dataLength} bytes after the last tensor's data are not covered by any tensor`);
  }
  return { headerLength, dataStart, dataLength, tensors, byName: new Map(tensors.map((t) => [t.name, t])), metadata };
}

function parseMetadata(value: unknown, headerError: (p: string) => FedloraError): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw headerError(`'${METADATA_KEY}' must be an object of strings`);
  }
  const entries = Object.entries(value as Record<string, unknown>);
  for (const [k, v] of entries) {
    if (typeof v !== 'string') throw headerError(`'${METADATA_KEY}.${k}' must be a string, got ${JSON.stringify(v)}`);
  }
  // fromEntries defines own properties, so a key such as "__proto__" stays a plain key.
  return Object.fromEntries(entries) as Record<string, string>;
}

function parseTensorInfo(name: string, value: unknown, source: string): SafetensorsTensorInfo {
  const fail = (code: 'FL_ERR_SAFETENSORS_HEADER' | 'FL_ERR_SAFETENSORS_DTYPE' | 'FL_ERR_SAFETENSORS_OFFSETS', problem: string): FedloraError =>
    new FedloraError(code, `${source}: tensor '${name}': ${problem}`, { source, tensor: name });
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw fail('FL_ERR_SAFETENSORS_HEADER', 'entry must be an object with dtype, shape and data_offsets');
  }
  // Other fields are ignored, as the reference reader does.
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (typeof dtype !== 'string') throw fail('FL_ERR_SAFETENSORS_HEADER', `dtype must be a string, got ${JSON.stringify(dtype)}`);
  if (SAFETENSORS_DTYPE_BITS[dtype] === undefined) throw fail('FL_ERR_SAFETENSORS_DTYPE', `unknown dtype '${dtype}'`);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw fail('FL_ERR_SAFETENSORS_HEADER', `shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o))) {
    throw fail('FL_ERR_SAFETENSORS_HEADER', `data_offsets must be two integers [begin, end], got ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin < 0 || end < 0) throw fail('FL_ERR_SAFETENSORS_OFFSETS', `data_offsets [${begin}, ${end}] are negative`);
  return { name, dtype, shape: shape as number[], begin, end };
}

/** True when the string survives UTF-8 encoding (no lone surrogates). */
function isWellFormedUnicode(s: string): boolean {
  return Buffer.from(s, 'utf8').toString('utf8') === s;
}

/** Bytes of a tensor's data, refusing shapes whose size is not a safe integer. */
function byteSize(t: TensorSpec, offsetsError: (p: string) => FedloraError): number {
  let bits = SAFETENSORS_DTYPE_BITS[t.dtype]!;
  for (const d of t.shape) {
    bits *= d;
    if (!Number.isSafeInteger(bits)) throw offsetsError(`tensor '${t.name}': shape [${t.shape.join(', ')}] is too large`);
  }
  if (bits % 8 !== 0) throw offsetsError(`tensor '${t.name}': ${t.dtype} [${t.shape.join(', ')}] does not fill whole bytes`);
  return bits / 8;
}

/** Compares strings by their UTF-8 bytes, as Rust's `str` ordering (used by the writer) does. */
export function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * Lays tensors out as the Python `safetensors` writer does (`prepare` in safetensors/src/tensor.rs):
 * sorted by dtype alignment descending, then by name (UTF-8 byte order), packed contiguously from
 * offset 0; the JSON is compact with `__metadata__` first (its keys sorted here, where the
 * reference uses a hash map's order), and padded with spaces to a multiple of 8 bytes so the data
 * buffer starts 8-aligned.
 * @param metadata written only when given (an empty object gives `"__metadata__":{}`, as in Python)
 * @returns the tensors with their offsets in data order, the padded header bytes and the data size
 */
export function planLayout(specs: readonly TensorSpec[], metadata?: Readonly<Record<string, string>>): {
  readonly tensors: readonly SafetensorsTensorInfo[];
  readonly headerBytes: Uint8Array;
  readonly dataLength: number;
} {
  const seen = new Set<string>();
  for (const spec of specs) {
    if (spec.name === METADATA_KEY) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `a tensor cannot be named '${METADATA_KEY}'`);
    if (!isWellFormedUnicode(spec.name)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `tensor name ${JSON.stringify(spec.name)} is not valid Unicode`);
    if (seen.has(spec.name)) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `tensor '${spec.name}' is given twice`, { tensor: spec.name });
    seen.add(spec.name);
    if (SAFETENSORS_DTYPE_BITS[spec.dtype] === undefined) {
      throw new FedloraError('FL_ERR_SAFETENSORS_DTYPE', `tensor '${spec.name}': unknown dtype '${spec.dtype}'`, { tensor: spec.name });
    }
    if (!spec.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `tensor '${spec.name}': shape must hold non-negative integers, got [${spec.shape.join(', ')}]`);
    }
  }
  const invalid = (p: string): FedloraError => new FedloraError('FL_ERR_INVALID_ARGUMENT', p);
  // UTF-8 bytes of each name, encoded once rather than in every comparison.
  const utf8 = new Map(specs.map((spec) => [spec.name, Buffer.from(spec.name, 'utf8')]));
  const sorted = [...specs].sort((a, b) => dtypeAlignmentRank(b.dtype) - dtypeAlignmentRank(a.dtype) || Buffer.compare(utf8.get(a.name)!, utf8.get(b.name)!));
  const tensors: SafetensorsTensorInfo[] = [];
  let offset = 0;
  for (const spec of sorted) {
    const n = byteSize(spec, invalid);
    tensors.push({ name: spec.name, dtype: spec.dtype, shape: [...spec.shape], begin: offset, end: offset + n });
    offset += n;
  }

  // Built by hand, not with JSON.stringify of an object: JS objects enumerate integer-like keys
  // ("0", "12") first, which would break the sorted order.
  const entries: string[] = [];
  if (metadata !== undefined) {
    const keys = Object.keys(metadata).sort(compareUtf8);
    for (const k of keys) {
      if (typeof metadata[k] !== 'string') throw invalid(`metadata '${k}' must be a string`);
      if (!isWellFormedUnicode(k) || !isWellFormedUnicode(metadata[k])) throw invalid(`metadata '${k}' is not valid Unicode`);
    }
    entries.push(`${JSON.stringify(METADATA_KEY)}:{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(',')}}`);
  }
  for (const t of tensors) {
    entries.push(`${JSON.stringify(t.name)}:{"dtype":${JSON.stringify(t.dtype)},"shape":[${t.shape.join(',')}],"data_offsets":[${t.begin},${t.end}]}`);
  }
  const json = Buffer.from(`{${entries.join(',')}}`, 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  const headerBytes = new Uint8Array(padded).fill(0x20);
  headerBytes.set(json);
  if (padded > MAX_HEADER_BYTES) throw invalid(`the header would be ${padded} bytes, above the 100 MB limit of the format`);
  return { tensors, headerBytes, dataLength: offset };
}

/** The 8-byte little-endian length prefix for a header of `n` bytes. */
export function lengthPrefix(n: number): Uint8Array {
  const prefix = new Uint8Array(LENGTH_PREFIX_BYTES);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(n), true);
  return prefix;
}
