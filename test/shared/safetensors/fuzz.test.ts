import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isFedloraError } from '../../../shared/errors.js';
import { decodeSafetensors, encodeSafetensors } from '../../../shared/safetensors/index.js';
import { makeTensor } from '../../../shared/tensor.js';
import { rawSafetensors } from './raw.js';

/** Decoding untrusted bytes (a client update on the wire) either succeeds or throws a coded FedloraError. */
function decodesOrCodedError(bytes: Uint8Array): void {
  try {
    decodeSafetensors(bytes);
  } catch (e) {
    expect(isFedloraError(e), `not a FedloraError: ${String(e)}`).toBe(true);
  }
}

const valid = encodeSafetensors(
  [makeTensor('a', [2, 3], new Float32Array([1, 2, 3, 4, 5, 6])), makeTensor('b.weight', [1], new Float32Array([7])), makeTensor('s', [])],
  { format: 'pt' },
);

describe('decodeSafetensors on hostile input never fails with an uncoded error', () => {
  it('random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), decodesOrCodedError), { numRuns: 500 });
  });

  it('a valid buffer with bytes changed, cut or appended', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.nat(), fc.uint8Array({ maxLength: 8 }), (edits, cut, tail) => {
        const bytes = valid.slice();
        for (const [at, value] of edits) bytes[at % bytes.length] = value;
        const end = cut % (bytes.length + 1);
        decodesOrCodedError(Uint8Array.from([...bytes.subarray(0, end), ...(end === bytes.length ? tail : [])]));
      }),
      { numRuns: 1000 },
    );
  });

  it('headers made of random JSON values', () => {
    const entry = fc.record({
      dtype: fc.oneof(fc.constantFrom('F32', 'F16', 'BF16', 'I64', 'F4', 'F6_E2M3', 'X'), fc.anything()),
      shape: fc.oneof(fc.array(fc.integer({ min: -2, max: 2 ** 40 }), { maxLength: 3 }), fc.anything()),
      data_offsets: fc.oneof(fc.tuple(fc.integer({ min: -8, max: 64 }), fc.integer({ min: -8, max: 64 })), fc.anything()),
    });
    const header = fc.dictionary(fc.oneof(fc.constantFrom('__metadata__', 'a', '0'), fc.string({ maxLength: 4 })), fc.oneof(entry, fc.anything()), { maxKeys: 4 });
    fc.assert(
      fc.property(header, fc.uint8Array({ maxLength: 64 }), (h, data) => {
        let text: string;
        try {
          text = JSON.stringify(h);
        } catch {
          return; // BigInt and the like: not JSON
        }
        if (text === undefined) return;
        decodesOrCodedError(rawSafetensors(text, data));
      }),
      { numRuns: 1000 },
    );
  });
});
