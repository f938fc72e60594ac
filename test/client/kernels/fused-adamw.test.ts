import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { fusedAdamWActive, prepareFusedKernels } from '../../../client/kernels/fused-adamw.js';
import { AdamW } from '../../../client/train/adamw.js';

describe('fused AdamW kernels (webgpu only)', () => {
  it('stay off on the CPU backends, even when asked for, and AdamW keeps its op path there', async () => {
    await tf.setBackend('cpu');
    expect(await prepareFusedKernels({ FEDLORA_FUSED_KERNELS: '1' })).toBe(false);
    expect(fusedAdamWActive()).toBe(false);
    // the op path still updates: one step of AdamW moves p by lr (|m_hat / sqrt(v_hat)| = 1 at t = 1)
    const p = tf.variable(tf.tensor1d([1, -2]));
    const g = tf.tensor1d([0.5, -4]);
    const opt = new AdamW({ fused: true });
    opt.applyGradients([p], [g], 0.1);
    const got = await p.data();
    expect(got[0]).toBeCloseTo(0.9, 6);
    expect(got[1]).toBeCloseTo(-1.9, 6);
    opt.dispose();
    tf.dispose([p, g]);
  });
});
