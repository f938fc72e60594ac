import { FedloraError } from './errors.js';

/** Dtypes of the safetensors format that fedlora reads. In memory every tensor is F32. */
export type DType = 'F32' | 'F16' | 'BF16';

/**
 * A named tensor on a typed array, row-major (C order), as stored in safetensors.
 * In memory fedlora always holds float32: F16/BF16 are widened on read.
 */
export interface Tensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: 'F32';
  readonly data: Float32Array;
}

/** Number of elements of a shape; [] is a scalar with one element. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Makes a tensor, checking that the shape is made of non-negative integers and matches the data.
 * @param data defaults to zeros of the shape
 */
export function makeTensor(name: string, shape: readonly number[], data?: Float32Array): Tensor {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new FedloraError('FL_ERR_INVALID_ARGUMENT', `tensor '${name}': shape must hold non-negative integers, got [${shape.join(', ')}]`);
    }
  }
  const n = numel(shape);
  const values = data ?? new Float32Array(n);
  if (values.length !== n) {
    throw new FedloraError('FL_ERR_SHAPE_MISMATCH', `tensor '${name}': shape [${shape.join(', ')}] needs ${n} values, got ${values.length}`);
  }
  return { name, shape: [...shape], dtype: 'F32', data: values };
}
