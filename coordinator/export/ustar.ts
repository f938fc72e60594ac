/**
 * A minimal POSIX ustar writer: regular files only, in memory.
 *
 * Why hand-written: the adapter download is a tar of two small files (adapter_config.json and
 * adapter_model.safetensors), no tar package is installed, and adding one is not ours to do
 * (team rules). ustar is 512-byte headers plus zero-padded data, ~60 lines; `tar` and Python's
 * tarfile read what this writes (test/coordinator/export/ustar.test.ts checks both).
 * Limits: names up to 100 bytes (no prefix split), files under 8 GiB (11 octal digits).
 */
import { FedloraError } from '../../shared/errors.js';

export interface TarEntry {
  /** Path inside the archive, e.g. `adapter/adapter_config.json`. */
  readonly name: string;
  readonly data: Uint8Array;
  /** Unix permission bits. @default 0o644 */
  readonly mode?: number;
  /** Modification time, seconds since the epoch. @default 0 (reproducible archives) */
  readonly mtime?: number;
}

const BLOCK = 512;

function writeOctal(header: Uint8Array, offset: number, width: number, value: number): void {
  // width - 1 octal digits then NUL, as ustar asks.
  const text = Math.trunc(value).toString(8).padStart(width - 1, '0');
  if (text.length > width - 1) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `tar field of ${width} bytes cannot hold ${value}`);
  for (let i = 0; i < text.length; i++) header[offset + i] = text.charCodeAt(i);
  header[offset + width - 1] = 0;
}

function writeString(header: Uint8Array, offset: number, width: number, value: string): void {
  const bytes = new TextEncoder().encode(value);
  if (bytes.length > width) throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `tar entry name '${value}' is longer than ${width} bytes`);
  header.set(bytes, offset);
}

function headerOf(entry: TarEntry): Uint8Array {
  const h = new Uint8Array(BLOCK);
  writeString(h, 0, 100, entry.name);
  writeOctal(h, 100, 8, entry.mode ?? 0o644);
  writeOctal(h, 108, 8, 0); // uid
  writeOctal(h, 116, 8, 0); // gid
  writeOctal(h, 124, 12, entry.data.length);
  writeOctal(h, 136, 12, entry.mtime ?? 0);
  h.fill(0x20, 148, 156); // checksum field counts as spaces while summing
  h[156] = 0x30; // '0': regular file
  writeString(h, 257, 6, 'ustar\0');
  writeString(h, 263, 2, '00');
  writeString(h, 265, 32, 'fedlora');
  writeString(h, 297, 32, 'fedlora');
  let sum = 0;
  for (const b of h) sum += b;
  writeOctal(h, 148, 7, sum); // six digits, NUL
  h[155] = 0x20; // then a space
  return h;
}

/** A ustar archive of the entries, in order, ending with the two zero blocks. */
export function writeUstar(entries: readonly TarEntry[]): Uint8Array {
  let total = 2 * BLOCK;
  for (const e of entries) total += BLOCK + Math.ceil(e.data.length / BLOCK) * BLOCK;
  const out = new Uint8Array(total);
  let at = 0;
  for (const e of entries) {
    out.set(headerOf(e), at);
    at += BLOCK;
    out.set(e.data, at);
    at += Math.ceil(e.data.length / BLOCK) * BLOCK;
  }
  return out;
}
