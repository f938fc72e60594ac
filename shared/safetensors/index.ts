/**
 * The safetensors format, fedlora's one tensor format for the wire, the disk and the export
 * (docs/formats.md): in memory (codec.ts), as files read and written tensor by tensor
 * (file.ts), the header rules (header.ts) and the dtypes (dtype.ts). See docs/formats.md.
 */
export { decodeSafetensors, decodeSafetensorsHeader, encodeSafetensors, type DecodedSafetensors } from './codec.js';
export {
  SafetensorsFile,
  SafetensorsFileWriter,
  iterateSafetensors,
  readSafetensorsFile,
  readSafetensorsHeader,
  readSafetensorsTensor,
  writeSafetensorsFile,
  type WriterTensorSpec,
} from './file.js';
export { MAX_HEADER_BYTES, type SafetensorsHeader, type SafetensorsTensorInfo } from './header.js';
export { READABLE_DTYPES, halfBitsToNumber } from './dtype.js';
