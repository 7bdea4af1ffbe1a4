import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURE = fileURLToPath(new URL('../fixtures/layering/', import.meta.url));
const DEPCRUISE = fileURLToPath(new URL('../../node_modules/.bin/depcruise', import.meta.url));

/** `depcruise DIRS` with the project's rules (.dependency-cruiser.cjs), run in `cwd`. */
function checkLayers(cwd: string, dirs: string[]): { status: number | null; output: string } {
  const run = spawnSync(DEPCRUISE, [...dirs, '--config', `${REPO}.dependency-cruiser.cjs`], { cwd, encoding: 'utf8' });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

/** The one-way layout rule that `npm test` runs (`npm run check:layers`) bites, and the tree keeps it. */
describe('layering rules', () => {
  it('refuse an upward import (src/ importing an app) and an import cycle', () => {
    const { status, output } = checkLayers(FIXTURE, ['src', 'relay']);
    expect(status).not.toBe(0);
    expect(output).toContain('error library-imports-no-app: src/upward.ts → relay/relay-part.ts');
    expect(output).toMatch(/error no-cycles: src\/cycle-a\.ts →\s+src\/cycle-b\.ts →\s+src\/cycle-a\.ts/);
  });

  it('pass on the tree', () => {
    const { status, output } = checkLayers(REPO, ['cli', 'src', 'relay', 'executor-agent', 'bench', 'test']);
    expect(output).toContain('no dependency violations found');
    expect(status).toBe(0);
  });
});
