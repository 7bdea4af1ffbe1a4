import v8 from 'node:v8';

/**
 * V8 flags every execrelay process (relay, agent, client commands) sets at start, because of how
 * it allocates: every pipe read, socket read, record and frame of a bulk transfer is a fresh
 * ArrayBuffer of up to 64 KiB, hundreds of MiB a second of them, nearly all dead within
 * milliseconds. V8 counts the external bytes (ArrayBuffer backing stores) allocated since the last
 * mark-compact against the old generation's limit, and a young collection runs only once about
 * 32 MiB of them have piled up, so with a heap of ~16 MiB those dead buffers alone reached the
 * limit: a long transfer settled into a mark-compact every ~70 ms (13–35 per 256 MiB in the agent,
 * 11–19 in the relay, up to 27 in a client) and about twice the CPU per MiB (docs/performance.md,
 * "fifth stop").
 *
 * - `--no-concurrent-array-buffer-sweeping`: freed buffers are swept on the main thread as part of
 *   each collection, so their bytes are given back at once instead of by a background job later
 *   (the relay's mark-compacts went to none, the direct agent's to 0–4 per 256 MiB).
 * - `--heap-growing-percent=200`: after a mark-compact the old generation may grow to three times
 *   what survived before the next one (V8 picks 1.1–4× by its own measure, and picked little here),
 *   room for those 32 MiB of young garbage (the relay-registered agent's went from 19–35 to 0–3
 *   per 256 MiB). The live heap is ~16 MiB, so this is tens of MiB at most; RSS peaks are checked
 *   by the memory-bounded tests (test/long).
 *
 * V8 reads both at each collection, so setting them at start is enough. An option the node command
 * line names itself (`node --concurrent-array-buffer-sweeping …`) is left as given. The library
 * (`src/`) never sets V8 flags: an application embedding the client decides its own (the
 * benchmarks' clients call this too, to measure what the CLI does).
 */
export const GARBAGE_COLLECTOR_FLAGS: readonly string[] = ['--no-concurrent-array-buffer-sweeping', '--heap-growing-percent=200'];

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

/** Sets GARBAGE_COLLECTOR_FLAGS on this process's V8, except those node's command line names. Returns the flags set. */
export function tuneGarbageCollector(execArgv: readonly string[] = process.execArgv): string[] {
  const flags = garbageCollectorFlagsToSet(execArgv);
  for (const flag of flags) v8.setFlagsFromString(flag);
  return flags;
}
