import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { seededNormalValues, seededUniformValues } from '../../../client/lora/seeded-draws.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('seeded draws without a device read', () => {
  it('equal tf.randomUniform bit for bit (seed 0 included: tfjs seeds it, it is not Math.random)', async () => {
    for (const [count, min, max, seed] of [[1000, -0.25, 0.25, 7], [33, 0, 1, 0], [5, -3, 5, 123456789]] as const) {
      const t = tf.randomUniform([count], min, max, 'float32', seed);
      expect(seededUniformValues(count, min, max, seed)).toEqual(await t.data());
      t.dispose();
    }
  });

  it('equal tf.randomNormal bit for bit, odd counts included', async () => {
    for (const [count, mean, std, seed] of [[1001, 0, 0.02, 5], [4, 1, 3, 99], [1, 0, 1, 17]] as const) {
      const t = tf.randomNormal([count], mean, std, 'float32', seed);
      expect(seededNormalValues(count, mean, std, seed)).toEqual(await t.data());
      t.dispose();
    }
  });

  it('refuses a normal seed of 0 (tfjs would draw from Math.random) with a coded error', () => {
    expect(() => seededNormalValues(3, 0, 1, 0)).toThrow(/FL_ERR_INVALID_ARGUMENT: seededNormalValues: seed must be a finite non-zero number, got 0/);
  });
});
