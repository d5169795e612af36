import { defineConfig } from 'vitest/config';

// Integration tests share one kernel (cgroups, mounts, a spawner per state root), so
// files run one at a time; unit tests are fast enough that this costs little.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
    coverage: {
      provider: 'v8',
      include: ['src/**/*.ts'],
      reporter: ['text-summary', 'text'],
    },
  },
});
