import { describe, expect, it } from 'vitest';
import { GARBAGE_COLLECTOR_FLAGS, garbageCollectorFlagsToSet, tuneGarbageCollector } from '../../../cli/garbage-collector-tuning.js';

describe('the V8 flags every execrelay process sets at start', () => {
  it('turns concurrent ArrayBuffer sweeping off', () => {
    expect(GARBAGE_COLLECTOR_FLAGS).toEqual(['--no-concurrent-array-buffer-sweeping']);
    expect(garbageCollectorFlagsToSet([])).toEqual(['--no-concurrent-array-buffer-sweeping']);
  });

  it("ignores node's other options and a script's arguments", () => {
    expect(garbageCollectorFlagsToSet(['--cpu-prof', '--max-semi-space-size=32', '--import=./x.mjs'])).toEqual(['--no-concurrent-array-buffer-sweeping']);
  });

  it('leaves an option the node command line names as given, in any spelling', () => {
    for (const named of [
      '--concurrent-array-buffer-sweeping',
      '--no-concurrent-array-buffer-sweeping',
      '--concurrent_array_buffer_sweeping',
      '--no_concurrent_array_buffer_sweeping',
      '--concurrent-array-buffer-sweeping=true',
    ]) {
      expect(garbageCollectorFlagsToSet(['--cpu-prof', named]), named).toEqual([]);
    }
  });

  it('sets the flags on this process and says which', () => {
    // Setting it is harmless here (the test process's collections sweep on its main thread).
    expect(tuneGarbageCollector([])).toEqual(['--no-concurrent-array-buffer-sweeping']);
    expect(tuneGarbageCollector(['--concurrent-array-buffer-sweeping'])).toEqual([]);
  });
});
