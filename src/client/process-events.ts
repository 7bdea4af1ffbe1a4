import type { OutputStream } from '../protocol/process.js';

/**
 * A process event as the client hands it to callers, in seq order without gaps. Events rebuilt
 * from `process/read` (after a gap or lag) carry the seq the server gave them; an `exited` or
 * `closed` state learnt only from a read result has `seq: 0`.
 */
export type ClientProcessEvent =
  | { type: 'output'; seq: number; stream: OutputStream; chunk: Buffer }
  | { type: 'exited'; seq: number; exitCode: number; sandboxDenied: boolean }
  | { type: 'closed'; seq: number };

export interface ProcessCompletion {
  exitCode: number;
  sandboxDenied: boolean;
  /** Every output chunk's bytes in seq order (empty when output collection is off). */
  output: Buffer;
  stdout: Buffer;
  stderr: Buffer;
  /** True when collected output hit `maxCollectedBytes` and later bytes were not kept. */
  outputTruncated: boolean;
}

/** Thrown through `completion` when output needed for a complete stream is gone from the server. */
export class OutputLostError extends Error {
  constructor(readonly afterSeq: number) {
    super(`output no longer retained after seq ${afterSeq}`);
    this.name = 'OutputLostError';
  }
}
