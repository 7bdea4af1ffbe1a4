import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { GARBAGE_COLLECTOR_FLAGS, garbageCollectorFlagsToSet } from '../../../cli/garbage-collector-tuning.js';
import { CLI_PATH } from '../../support/cli.js';

const ALL = ['--no-concurrent-array-buffer-sweeping', '--heap-growing-percent=200'];

describe('the V8 flags every execrelay process sets at start', () => {
  it('turns concurrent ArrayBuffer sweeping off and lets the old generation grow threefold', () => {
    expect(GARBAGE_COLLECTOR_FLAGS).toEqual(ALL);
    expect(garbageCollectorFlagsToSet([])).toEqual(ALL);
  });

  it("ignores node's other options", () => {
    expect(garbageCollectorFlagsToSet(['--cpu-prof', '--max-semi-space-size=32', '--import=./x.mjs'])).toEqual(ALL);
  });

  it('leaves an option the node command line names as given, in any spelling', () => {
    for (const named of [
      '--concurrent-array-buffer-sweeping',
      '--no-concurrent-array-buffer-sweeping',
      '--concurrent_array_buffer_sweeping',
      '--no_concurrent_array_buffer_sweeping',
      '--concurrent-array-buffer-sweeping=true',
    ]) {
      expect(garbageCollectorFlagsToSet(['--cpu-prof', named]), named).toEqual(['--heap-growing-percent=200']);
    }
    expect(garbageCollectorFlagsToSet(['--heap_growing_percent=50'])).toEqual(['--no-concurrent-array-buffer-sweeping']);
    expect(garbageCollectorFlagsToSet(['--heap-growing-percent', '50', '--concurrent-array-buffer-sweeping'])).toEqual([]);
  });

  it('a fresh node process sets them, except what its command line names', () => {
    // In a process of its own (the built module, as the CLI loads it): the flags change that
    // process's collections, not this test worker's.
    const tuning = pathToFileURL(path.join(path.dirname(CLI_PATH), 'garbage-collector-tuning.js')).href;
    const run = (nodeFlags: string[]): unknown =>
      JSON.parse(execFileSync(process.execPath, [...nodeFlags, '--input-type=module', '-e', `import { tuneGarbageCollector } from '${tuning}'; console.log(JSON.stringify(tuneGarbageCollector()));`], { encoding: 'utf8' }));
    expect(run([])).toEqual(ALL);
    expect(run(['--concurrent-array-buffer-sweeping'])).toEqual(['--heap-growing-percent=200']);
  });
});
