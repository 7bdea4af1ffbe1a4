import { z } from 'zod';
import { base64Bytes, callerId, fileUri, nonNegativeInt } from './validation.js';

/** Which output stream a chunk came from. A PTY merges both into `pty`. */
export const OutputStream = z.enum(['stdout', 'stderr', 'pty']);
export type OutputStream = z.output<typeof OutputStream>;

const noNul = (s: string) => !s.includes('\0');

/** Limits on what a caller may ask the agent to spawn. */
export const PROCESS_START_LIMITS = {
  maxArgs: 4096,
  maxEnvEntries: 4096,
} as const;

/** Bounds on a pseudo-terminal's size (columns and rows each), and its size when none is given (as codex: 80x24). */
export const PTY_SIZE_LIMITS = {
  maxCols: 4096,
  maxRows: 4096,
  defaultCols: 80,
  defaultRows: 24,
} as const;

const ptyCols = z.number().int().min(1).max(PTY_SIZE_LIMITS.maxCols, `more than ${PTY_SIZE_LIMITS.maxCols} columns`);
const ptyRows = z.number().int().min(1).max(PTY_SIZE_LIMITS.maxRows, `more than ${PTY_SIZE_LIMITS.maxRows} rows`);

/** A terminal size in character cells (execrelay extension, offered as the `ptyResize` capability). */
export const PtySize = z.object({ cols: ptyCols, rows: ptyRows });
export type PtySize = z.output<typeof PtySize>;

/**
 * How the child's environment is built from the agent's own (codex `envPolicy`). Without a policy
 * the child gets exactly `env`, as in the codex exec-server.
 */
export const EnvPolicy = z.object({
  inherit: z.enum(['all', 'core', 'none']),
  ignoreDefaultExcludes: z.boolean().optional(),
  exclude: z.array(z.string()).max(PROCESS_START_LIMITS.maxEnvEntries).optional(),
  set: z.record(z.string(), z.string()).optional(),
  includeOnly: z.array(z.string()).max(PROCESS_START_LIMITS.maxEnvEntries).optional(),
});
export type EnvPolicy = z.output<typeof EnvPolicy>;

export const ProcessStartParams = z.object({
  processId: callerId,
  argv: z
    .array(z.string().refine(noNul, 'argument contains a NUL byte'))
    .min(1, 'must not be empty')
    .max(PROCESS_START_LIMITS.maxArgs, `more than ${PROCESS_START_LIMITS.maxArgs} arguments`)
    .refine((argv) => argv[0] !== '', 'program name must not be empty'),
  cwd: fileUri,
  env: z
    .record(z.string().min(1).refine((k) => noNul(k) && !k.includes('='), 'invalid variable name'), z.string().refine(noNul, 'value contains a NUL byte'))
    .refine((env) => Object.keys(env).length <= PROCESS_START_LIMITS.maxEnvEntries, 'too many variables')
    .default({}),
  envPolicy: EnvPolicy.nullish(),
  tty: z.boolean().default(false),
  /** execrelay extension (capability `ptyResize`): the pty's initial size; default 80x24. Ignored without `tty`. */
  ptySize: PtySize.nullish(),
  pipeStdin: z.boolean().default(false),
  arg0: z.string().refine(noNul, 'contains a NUL byte').nullish(),
});
export type ProcessStartParams = z.output<typeof ProcessStartParams>;
/** What a caller writes (before transforms): cwd as a `file://` URI. */
export type ProcessStartRequest = z.input<typeof ProcessStartParams>;

export const ProcessStartResult = z.object({ processId: z.string() });
export type ProcessStartResult = z.output<typeof ProcessStartResult>;

/** Upper bound on a long-poll `waitMs` (longer values are clamped, not refused). */
export const MAX_READ_WAIT_MS = 60_000;
/** Default and upper bound on the bytes one `process/read` returns. */
export const DEFAULT_READ_MAX_BYTES = 1024 * 1024;

export const ProcessReadParams = z.object({
  processId: callerId,
  afterSeq: nonNegativeInt.nullish(),
  maxBytes: z.number().int().min(1).nullish(),
  waitMs: nonNegativeInt.nullish(),
});
export type ProcessReadParams = z.output<typeof ProcessReadParams>;

export const OutputChunk = z.object({
  seq: nonNegativeInt,
  stream: OutputStream,
  chunk: base64Bytes,
});
export type OutputChunk = z.output<typeof OutputChunk>;

/**
 * `process/read` result. `sandboxDenied` is absent from legacy servers. `evictedThroughSeq` is an
 * execrelay extension: set when output after `afterSeq` up to and including this seq fell out of
 * the retained window, so a reader can report the loss instead of showing a hole.
 */
export const ProcessReadResult = z.object({
  chunks: z.array(OutputChunk),
  nextSeq: nonNegativeInt,
  exited: z.boolean(),
  exitCode: z.number().int().nullable(),
  closed: z.boolean(),
  failure: z.string().nullable(),
  sandboxDenied: z.boolean().optional(),
  evictedThroughSeq: nonNegativeInt.nullish(),
});
export type ProcessReadResult = z.output<typeof ProcessReadResult>;
export type ProcessReadResultWire = z.input<typeof ProcessReadResult>;

export const ProcessWriteParams = z.object({
  processId: callerId,
  chunk: base64Bytes,
  /** Retrying a write with the same id does not write it twice. */
  writeId: callerId.nullish(),
  /** execrelay extension: end stdin (EOF) after writing `chunk`. */
  closeStdin: z.boolean().default(false),
});
export type ProcessWriteParams = z.output<typeof ProcessWriteParams>;

export const WriteStatus = z.enum(['accepted', 'unknownProcess', 'stdinClosed', 'starting']);
export type WriteStatus = z.output<typeof WriteStatus>;
export const ProcessWriteResult = z.object({ status: WriteStatus });
export type ProcessWriteResult = z.output<typeof ProcessWriteResult>;

/** Signals a caller may send. `interrupt` is the codex one; the rest are execrelay extensions. */
export const ProcessSignalName = z.enum(['interrupt', 'terminate', 'kill', 'hangup', 'quit']);
export type ProcessSignalName = z.output<typeof ProcessSignalName>;
export const ProcessSignalParams = z.object({ processId: callerId, signal: ProcessSignalName });
export type ProcessSignalParams = z.output<typeof ProcessSignalParams>;
export const ProcessSignalResult = z.object({});

/** `process/resizePty` (execrelay extension, capability `ptyResize`): the new size of a tty process's terminal. */
export const ProcessResizePtyParams = z.object({ processId: callerId, cols: ptyCols, rows: ptyRows });
export type ProcessResizePtyParams = z.output<typeof ProcessResizePtyParams>;
export const ProcessResizePtyResult = z.object({});

export const ProcessTerminateParams = z.object({ processId: callerId });
export type ProcessTerminateParams = z.output<typeof ProcessTerminateParams>;
export const ProcessTerminateResult = z.object({ running: z.boolean() });
export type ProcessTerminateResult = z.output<typeof ProcessTerminateResult>;

// ---- Pushed notifications: one seq counter per process, starting at 1, shared by all three. ----

export const ProcessOutputNotification = z.object({
  processId: z.string(),
  seq: nonNegativeInt,
  stream: OutputStream,
  chunk: base64Bytes,
});
export type ProcessOutputNotification = z.output<typeof ProcessOutputNotification>;

/**
 * `process/output` params as JSON text: exactly `JSON.stringify({processId, seq, stream, chunk})`
 * with `chunk` in base64, written out directly because base64 needs no escaping (the output path
 * is the hot one: no intermediate object, one pass over the bytes).
 */
export function processOutputParamsJson(processId: string, seq: number, stream: OutputStream, chunk: Buffer): string {
  return `{"processId":${JSON.stringify(processId)},"seq":${seq},"stream":${JSON.stringify(stream)},"chunk":"${chunk.toString('base64')}"}`;
}

/** `sandboxDenied` is absent from legacy servers; a client then asks `process/read` once. */
export const ProcessExitedNotification = z.object({
  processId: z.string(),
  seq: nonNegativeInt,
  exitCode: z.number().int(),
  sandboxDenied: z.boolean().optional(),
});
export type ProcessExitedNotification = z.output<typeof ProcessExitedNotification>;

export const ProcessClosedNotification = z.object({
  processId: z.string(),
  seq: nonNegativeInt,
});
export type ProcessClosedNotification = z.output<typeof ProcessClosedNotification>;
