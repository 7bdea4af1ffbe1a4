import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { GARBAGE_COLLECTOR_FLAGS, garbageCollectorFlagsToSet } from '../../../cli/memory-tuning.js';
import { CLI_PATH } from '../../support/cli.js';

const ALL = ['--no-concurrent-array-buffer-sweeping', '--heap-growing-percent=200'];
const TUNING = pathToFileURL(path.join(path.dirname(CLI_PATH), 'memory-tuning.js')).href;
const glibc = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime !== undefined;

/**
 * Runs `script` in a fresh node process (the built module, as the CLI loads it: the settings change
 * that process, not this test worker) and returns what it printed as JSON.
 */
function inFreshProcess(script: string, nodeFlags: string[] = [], env: Record<string, string> = {}): unknown {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^MALLOC_|^GLIBC_TUNABLES$/.test(name)));
  return JSON.parse(
    execFileSync(process.execPath, [...nodeFlags, '--input-type=module', '-e', `import { tuneMemory } from '${TUNING}';\n${script}`], {
      encoding: 'utf8',
      env: { ...clean, ...env },
    }),
  );
}

describe('how every execrelay process sets up its memory at start', () => {
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

  it('a fresh node process sets the flags its command line does not name, and raises the malloc thresholds unless malloc is tuned by environment', () => {
    const report = 'console.log(JSON.stringify(tuneMemory()));';
    expect(inFreshProcess(report)).toEqual({ flags: ALL, mallocThresholdsRaised: true });
    expect(inFreshProcess(report, ['--concurrent-array-buffer-sweeping'])).toEqual({ flags: ['--heap-growing-percent=200'], mallocThresholdsRaised: true });
    expect(inFreshProcess(report, [], { MALLOC_TRIM_THRESHOLD_: '1048576' })).toEqual({ flags: ALL, mallocThresholdsRaised: false });
    expect(inFreshProcess(report, [], { GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=1048576' })).toEqual({ flags: ALL, mallocThresholdsRaised: false });
    expect(inFreshProcess(report, [], { GLIBC_TUNABLES: 'glibc.malloc.tcache_count=0' })).toEqual({ flags: ALL, mallocThresholdsRaised: true });
  });

  it.runIf(process.platform === 'linux' && glibc)('with glibc, a steady churn of 64 KiB buffers no longer faults fresh pages in', () => {
    // 1 GiB of 64 KiB buffers (16 alive at a time) to settle, then another GiB counted: untuned, glibc
    // gives the freed heap back after collections and the second GiB faults pages in again (500–650
    // faults here); tuned, the block's collection raised the trim threshold and it faults almost none.
    const churn = (tune: boolean): number =>
      inFreshProcess(`
        import { readFileSync } from 'node:fs';
        ${tune ? 'tuneMemory();' : ''}
        const faults = () => Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[7]);
        const alive = [];
        const churn = async () => {
          for (let i = 0; i < 16384; i++) {
            const block = Buffer.allocUnsafe(65536 + 200);
            block.fill(i & 255);
            alive.push(block);
            if (alive.length > 16) alive.shift();
            if (i % 1024 === 0) await new Promise((resolve) => setImmediate(resolve));
          }
        };
        await churn();
        const before = faults();
        await churn();
        console.log(faults() - before);
      `) as number;
    const untuned = churn(false);
    const tuned = churn(true);
    expect(tuned, `faults in the second GiB: tuned ${tuned}, untuned ${untuned}`).toBeLessThan(100);
  });
});
