/**
 * Seeded initialisation of LoRA factors.
 *
 * The values are tfjs' seeded `tf.randomUniform` draws, computed in JavaScript (seeded-draws.ts)
 * whatever the backend, so the same seed gives the same A on every client and every backend
 * (FFA-LoRA needs A identical everywhere, docs/strategies.md), and no tensor is read back from
 * the device to get them.
 */
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import { seededUniformValues } from './seeded-draws.js';

/**
 * Row-major [rows, cols] values drawn from U(-bound, bound) with a seed.
 * @param seed an integer; the same seed gives the same values on every backend
 */
export function seededUniform(rows: number, cols: number, bound: number, seed: number): Float32Array {
  return seededUniformValues(rows * cols, -bound, bound, seed);
}

/**
 * LoRA's A [r, n]: Kaiming-uniform as PEFT draws it for lora_A, U(-1/sqrt(n), 1/sqrt(n))
 * (kaiming_uniform_ with a = sqrt(5) gives bound sqrt(6 / ((1 + 5) n)) = 1/sqrt(n)).
 */
export function kaimingUniformA(rank: number, inFeatures: number, seed: number): Float32Array {
  return seededUniform(rank, inFeatures, 1 / Math.sqrt(inFeatures), seed);
}

/**
 * A per-module seed from a job seed and the module path (docs/strategies.md, "ffa": the
 * frozen A derives from a hash of the job seed and the module path), so every client derives the same frozen A for a module.
 * @returns a non-negative 31-bit integer: the first 4 bytes of SHA-256("<seed>:<path>")
 */
export function moduleSeed(seed: number, path: string): number {
  return createHash('sha256').update(`${seed}:${path}`).digest().readUInt32BE(0) >>> 1;
}

/**
 * A variable initialised from a tensor, which is then freed: tf.variable(t) shares t's data but
 * leaves t alive, one leaked tensor per variable otherwise.
 */
export function variableFrom(initial: tf.Tensor, trainable = true): tf.Variable {
  const v = tf.variable(initial, trainable);
  initial.dispose();
  return v;
}
