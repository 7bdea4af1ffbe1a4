import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

/**
 * The long suites (`test/long/`): GiB-scale transfers and a 2,000-file tree through real processes
 * with their memory bounds, and the npm package installed from its tarball. Too long for the
 * default run (`npm test`, kept under 10 minutes on two cores); CI runs both (`npm run test:all`).
 * Everything but which files run is the default run's.
 */
export default defineConfig({ test: { ...base.test, include: ['test/long/**/*.test.ts'], exclude: ['**/node_modules/**'] } });
