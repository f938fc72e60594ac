/**
 * libtensorflow through tfjs-node-gpu (CUDA) or tfjs-node (CPU). Optional dependencies: their
 * install downloads libtensorflow from a host the dev machines cannot reach (docs/training.md, "Backends"), so they
 * are loaded by a dynamic import and a failure only means "not available here".
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendCandidate } from './types.js';

const PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

export const tensorflowBackend: BackendCandidate = {
  name: 'tensorflow',
  tfName: 'tensorflow',
  async load() {
    const failures: string[] = [];
    for (const pkg of PACKAGES) {
      try {
        await import(pkg);
        if (!(await tf.setBackend('tensorflow'))) throw new Error('tf.setBackend("tensorflow") failed');
        await tf.ready();
        return { device: `libtensorflow via ${pkg}${pkg.endsWith('-gpu') ? ' (CUDA)' : ' (CPU)'}` };
      } catch (e) {
        failures.push(`${pkg}: ${firstLine(e)}`);
      }
    }
    throw new Error(failures.join('; '));
  },
};

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
}
