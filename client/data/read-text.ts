/** Reads a data file as text, gunzipping it when it starts with the gzip magic bytes. */
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { FedloraError } from '../../shared/errors.js';

export async function readDataText(path: string): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new FedloraError('FL_ERR_IO', `cannot read data file ${path}: ${(e as Error).message}`, { file: path }, { cause: e });
  }
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw new FedloraError('FL_ERR_DATA', `${path}: looks gzipped but does not decompress: ${(e as Error).message}`, { file: path }, { cause: e });
    }
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (e) {
    throw new FedloraError('FL_ERR_DATA', `${path}: is not valid UTF-8 text`, { file: path }, { cause: e });
  }
}

/** Splits text into lines (\n or \r\n), with 1-based line numbers; a final empty line is dropped. */
export function numberedLines(text: string): Array<{ line: number; text: string }> {
  const parts = text.split(/\r?\n/);
  if (parts.length > 0 && parts[parts.length - 1] === '') parts.pop();
  return parts.map((t, i) => ({ line: i + 1, text: t }));
}
