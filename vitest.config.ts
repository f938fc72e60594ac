import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Synchronous tensor reads throw in every test process, its worker threads and the CLIs it
    // starts, as they do on webgpu in Node (client/backends/sync-reads.ts).
    env: { FEDLORA_FORBID_SYNC_READS: '1' },
    setupFiles: ['test/setup/forbid-sync-reads.ts'],
    // The machine has 2 cores; tfjs wasm tests are CPU-bound, so forks keep them isolated.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    typecheck: { enabled: true, include: ['test/**/*.test-d.ts'] },
  },
});
