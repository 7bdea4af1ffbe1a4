import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The long suites (GiB transfers, a 2,000-file tree, package installs) run on their own:
    // `npm run test:long` (vitest.long.config.ts); CI runs both (`npm run test:all`).
    exclude: ['test/long/**', '**/node_modules/**'],
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
