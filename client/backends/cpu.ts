/** The plain JavaScript backend: always there, correct, and slow (< 1 GFLOP/s, docs/training.md, "Backends"). */
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import type { BackendCandidate } from './types.js';

export const cpuBackend: BackendCandidate = {
  name: 'cpu',
  tfName: 'cpu',
  async load() {
    if (!(await tf.setBackend('cpu'))) throw new Error('tf.setBackend("cpu") failed');
    await tf.ready();
    return { device: `JavaScript on ${os.cpus()[0]?.model ?? 'an unknown cpu'}` };
  },
};
