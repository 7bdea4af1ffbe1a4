import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // No test touches the user's own client key or relay state (XDG_CONFIG_HOME, XDG_STATE_HOME).
    setupFiles: ['test/support/isolated-user-dirs.ts'],
    // Two cores on CI: keep the number of parallel suites small so timing-sensitive
    // process tests do not starve each other.
    maxWorkers: 2,
  },
});
