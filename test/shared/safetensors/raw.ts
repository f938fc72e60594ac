/**
 * Builds safetensors bytes by hand from a header text and data bytes, without fedlora's writer,
 * so tests can make both valid files laid out by the spec and malformed ones.
 */

/** Little-endian u64 of n. */
export function u64le(n: number | bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  return out;
}

/**
 * Concatenates: the 8-byte header length (the header's UTF-8 length unless `declaredLength`
 * says otherwise), the header text, and the data bytes.
 */
export function rawSafetensors(header: string, data: Uint8Array | readonly number[] = [], declaredLength?: number | bigint): Uint8Array {
  const json = Buffer.from(header, 'utf8');
  const body = Uint8Array.from(data);
  const out = new Uint8Array(8 + json.length + body.length);
  out.set(u64le(declaredLength ?? json.length), 0);
  out.set(json, 8);
  out.set(body, 8 + json.length);
  return out;
}

/** The little-endian bytes of float32 values. */
export function f32le(values: readonly number[]): number[] {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return [...out];
}
