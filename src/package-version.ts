import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's name in its package.json (how the lookup below knows it found the right file). */
const PACKAGE_NAME = 'execrelay';

/**
 * execrelay's version from its package.json, found by walking up from this module (it sits at a
 * different depth in the sources, run by the tests, and in `dist/`). `0.0.0-unknown` if no
 * package.json of execrelay is found (a bundler that dropped it): telemetry never fails startup.
 */
function readPackageVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const parsed = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (parsed.name === PACKAGE_NAME && typeof parsed.version === 'string') return parsed.version;
    } catch {
      // No (readable) package.json here: keep walking up.
    }
    const parent = path.dirname(dir);
    if (parent === dir) return '0.0.0-unknown';
    dir = parent;
  }
}

export const PACKAGE_VERSION: string = readPackageVersion();
