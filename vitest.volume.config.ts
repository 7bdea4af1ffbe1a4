import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

/**
 * The volume suites: GiB-scale transfers through real processes with their memory bounds
 * (`test/volume/`). Too long for the default run (`npm test`, kept under 10 minutes on two cores);
 * CI runs both (`npm run test:all`). Everything but which files run is the default run's.
 */
export default defineConfig({ test: { ...base.test, include: ['test/volume/**/*.test.ts'], exclude: ['**/node_modules/**'] } });
