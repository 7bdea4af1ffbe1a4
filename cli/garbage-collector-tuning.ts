import v8 from 'node:v8';

/**
 * V8 flags every execrelay process (relay, agent, client commands) sets at start, because of how
 * it allocates: every pipe read, socket read, record and frame of a bulk transfer is a fresh
 * ArrayBuffer of up to 64 KiB, hundreds of MiB a second of them.
 *
 * `--no-concurrent-array-buffer-sweeping`: V8 counts the external bytes (ArrayBuffer backing
 * stores) allocated since the last mark-compact against the old generation's limit. When freed
 * buffers are swept on a background thread their bytes are given back late, the count reaches the
 * limit every few tens of MiB of output, and a long transfer settles into a mark-compact every
 * ~70 ms: measured on the direct agent, 13–17 mark-compacts per 256 MiB once it had settled, and
 * twice the CPU per MiB (docs/performance.md, "fifth stop"). Swept on the main thread as part of
 * each collection, they are given back at once: 0–4 per 256 MiB, and the relay's went from 11–19
 * to none. V8 reads the flag at each collection, so setting it at start is enough.
 *
 * A flag the node command line names itself (`node --concurrent-array-buffer-sweeping …`) is left
 * as given. The library (`src/`) never sets V8 flags: an application embedding the client decides
 * its own (the benchmarks' clients call this too, to measure what the CLI does).
 */
export const GARBAGE_COLLECTOR_FLAGS: readonly string[] = ['--no-concurrent-array-buffer-sweeping'];

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
