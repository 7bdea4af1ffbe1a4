import v8 from 'node:v8';

/*
 * How every execrelay process (relay, agent, client commands) sets up its memory at start, because
 * of how it allocates: every pipe read, socket read, record and frame of a bulk transfer is a fresh
 * ArrayBuffer of up to 64 KiB, hundreds of MiB a second of them, nearly all dead within
 * milliseconds. The three settings below (two V8 flags, glibc's trim threshold) were found by
 * profiling transfers through the relay and are measured in docs/performance.md ("fifth stop").
 * The library (`src/`) sets none of this: an application embedding the client decides its own (the
 * benchmarks' clients call `tuneMemory` too, to measure what the CLI does).
 */

/**
 * V8 flags. V8 counts the external bytes (ArrayBuffer backing stores) allocated since the last
 * mark-compact against the old generation's limit, and a young collection runs only once about
 * 32 MiB of them have piled up, so with a heap of ~16 MiB those dead buffers alone reached the
 * limit: a long transfer settled into a mark-compact every ~70 ms (13–35 per 256 MiB in the agent,
 * 11–19 in the relay, up to 27 in a client) and about twice the CPU per MiB.
 *
 * - `--no-concurrent-array-buffer-sweeping`: freed buffers are swept on the main thread as part of
 *   each collection, so their bytes are given back at once instead of by a background job later
 *   (the relay's mark-compacts went to none, the direct agent's to 0–4 per 256 MiB).
 * - `--heap-growing-percent=200`: after a mark-compact the old generation may grow to three times
 *   what survived before the next one (V8 picks 1.1–4× by its own measure, and picked little here),
 *   room for those 32 MiB of young garbage (the relay-registered agent's went from 19–35 to 0–3
 *   per 256 MiB). During a transfer the live heap is ~16 MiB, so this costs tens of MiB at most
 *   (RSS peaks are checked by the memory-bounded tests in test/long); the relay of the capacity
 *   benchmark (1,000 executors, 10,000 streams) held 150 MiB against 132 without it.
 *
 * V8 reads both at each collection, so setting them at start is enough. Both are in V8's flag
 * definitions from Node.js 20's V8 on (a flag V8 did not know would print an error line on
 * stderr). An option the node command line names itself (`node --concurrent-array-buffer-sweeping
 * …`) is left as given.
 */
export const GARBAGE_COLLECTOR_FLAGS: readonly string[] = ['--no-concurrent-array-buffer-sweeping', '--heap-growing-percent=200'];

/**
 * Size of the block `raiseMallocTrimThreshold` allocates and drops: just under glibc's largest
 * dynamic mmap threshold (32 MiB on 64-bit; a block whose chunk is larger leaves the thresholds
 * alone), so the heap is trimmed only once ~62 MiB lie free at its top.
 */
export const MALLOC_THRESHOLD_BLOCK_BYTES = 31 * 1024 * 1024;

/** The V8 option a flag sets, without `--`, `no-` or a value, and with `_` read as `-`: `concurrent-array-buffer-sweeping`. */
function optionName(flag: string): string {
  return flag
    .replace(/^--?/, '')
    .replace(/=.*$/s, '')
    .replace(/_/g, '-')
    .replace(/^no-/, '');
}

/** The flags of GARBAGE_COLLECTOR_FLAGS whose option `execArgv` (node's own command line) does not name. */
export function garbageCollectorFlagsToSet(execArgv: readonly string[]): string[] {
  const named = new Set(execArgv.filter((arg) => arg.startsWith('-')).map(optionName));
  return GARBAGE_COLLECTOR_FLAGS.filter((flag) => !named.has(optionName(flag)));
}

/**
 * Allocates one block of MALLOC_THRESHOLD_BLOCK_BYTES and drops it. With glibc's malloc (Node's
 * ArrayBuffers are malloc'd) the heap is given back to the system whenever more than the trim
 * threshold (128 KiB at first) lies free at its top, and each young collection frees tens of MiB of
 * 64 KiB buffers at once: the relay gave its heap back after every collection and touched fresh
 * pages for the next frames, 31,000–34,000 page faults per 256 MiB forwarded and most of its CPU
 * (its per-frame copy in ws's receiver ran at memory-fault speed). glibc raises both thresholds
 * when it frees a block it had mapped on its own (mallopt(3), "dynamic mmap threshold"): once this
 * block is collected (the first young collection), the trim threshold is twice its size, and the
 * relay's faults per 256 MiB fell to a few hundred at most. Only a page of it is ever touched.
 * A no-op in effect with another malloc (musl); a process that tunes malloc by environment
 * (MALLOC_TRIM_THRESHOLD_ or MALLOC_MMAP_THRESHOLD_ set, or either in GLIBC_TUNABLES) is left
 * alone: a fixed threshold turns the dynamic adjustment off anyway.
 */
export function raiseMallocTrimThreshold(env: NodeJS.ProcessEnv = process.env): boolean {
  const tunedByEnvironment =
    env.MALLOC_TRIM_THRESHOLD_ !== undefined || env.MALLOC_MMAP_THRESHOLD_ !== undefined || /malloc\.(trim|mmap)_threshold/.test(env.GLIBC_TUNABLES ?? '');
  if (tunedByEnvironment) return false;
  const block = Buffer.allocUnsafeSlow(MALLOC_THRESHOLD_BLOCK_BYTES);
  block[0] = 1;
  return true;
}

export interface MemoryTuning {
  /** The V8 flags set (GARBAGE_COLLECTOR_FLAGS minus those node's command line names). */
  readonly flags: string[];
  /** Whether the malloc thresholds were raised (see `raiseMallocTrimThreshold`). */
  readonly mallocThresholdsRaised: boolean;
}

/** Sets this process up as above: the V8 flags node's command line does not name, and glibc's thresholds. */
export function tuneMemory(execArgv: readonly string[] = process.execArgv, env: NodeJS.ProcessEnv = process.env): MemoryTuning {
  const flags = garbageCollectorFlagsToSet(execArgv);
  for (const flag of flags) v8.setFlagsFromString(flag);
  return { flags, mallocThresholdsRaised: raiseMallocTrimThreshold(env) };
}
