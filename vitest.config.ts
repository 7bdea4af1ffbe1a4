import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // No test touches the user's own client key (~/.config/execrelay/client.key).
    setupFiles: ['test/support/isolated-config-home.ts'],
    // Two cores on CI: keep the number of parallel suites small so timing-sensitive
    // process tests do not starve each other.
    maxWorkers: 2,
  },
});
