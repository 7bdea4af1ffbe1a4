import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The volume suites (GiB-scale transfers and their memory bounds) run on their own:
    // `npm run test:volume` (vitest.volume.config.ts); CI runs both (`npm run test:all`).
    exclude: ['test/volume/**', '**/node_modules/**'],
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
