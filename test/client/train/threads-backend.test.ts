import { describe, expect, it } from 'vitest';
import { threadsForBackend } from '../../../client/train/train-worker-pool.js';

describe('data-parallel threads by backend', () => {
  it('the single-threaded CPU backends get the threads asked for; a GPU backend trains on one thread', () => {
    expect(threadsForBackend(16, 'wasm')).toBe(16);
    expect(threadsForBackend(3, 'cpu')).toBe(3);
    // 16 cores on the GPU machine must not mean 16 WebGPU devices and 16 model copies on one GPU
    expect(threadsForBackend(16, 'webgpu')).toBe(1);
    expect(threadsForBackend(16, 'tensorflow')).toBe(1);
  });
});
