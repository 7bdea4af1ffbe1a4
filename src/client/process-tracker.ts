import type {
  ProcessClosedNotification,
  ProcessExitedNotification,
  ProcessOutputNotification,
  ProcessReadResult,
} from '../protocol/process.js';
import { EventQueue } from './event-queue.js';
import { OutputLostError, type ClientProcessEvent, type ProcessCompletion } from './process-events.js';

export type PushedProcessEvent =
  | ({ type: 'output' } & ProcessOutputNotification)
  | ({ type: 'exited' } & ProcessExitedNotification)
  | ({ type: 'closed' } & ProcessClosedNotification);

export interface ProcessTrackerOptions {
  /** Issues `process/read {afterSeq}` (waitMs 0) for this process. */
  read: (afterSeq: number) => Promise<ProcessReadResult>;
  /** Counts reads (the client exposes the total so tests can assert 0 on the happy path). */
  onReadIssued: () => void;
  /** Keep every output byte for the completion result. */
  collectOutput: boolean;
  maxCollectedBytes: number;
  /** When set, events are also delivered through a bounded `events` iterable of this capacity. */
  eventBufferBytes: number | null;
  /** What a full `events` buffer does; see {@link SlowConsumerPolicy}. */
  slowConsumer: SlowConsumerPolicy;
  /** With `slowConsumer: 'pause'`: the buffer filled (true) or drained to half (false). */
  onBackpressure: (full: boolean) => void;
}

/**
 * What happens when the consumer of `events` lags its bounded buffer:
 * - `'pause'`: the client stops reading its connection until the consumer drains the buffer to
 *   half, so the agent's socket (or the relay stream's window) fills and the agent pauses the
 *   child's output: the remote process blocks in `write`, as under ssh. Nothing is read again or
 *   lost. Every message on the connection waits meanwhile, responses included: a consumer must not
 *   wait inside its loop for a request on the same client while its buffer may be full.
 * - `'read'`: the client keeps reading and drops pushed events past the buffer, then catches up
 *   with `process/read` (the codex behaviour for a lagging broadcast receiver); output the agent no
 *   longer retains by then fails the process with an OutputLostError.
 */
export type SlowConsumerPolicy = 'pause' | 'read';

/** Byte budget asked of each catch-up `process/read`. */
export const READ_BUDGET_BYTES = 1024 * 1024;
/** Largest output chunk a server sends (a pipe read); a read within this of its budget may be cut. */
const MAX_CHUNK_BYTES = 64 * 1024;

/** Pushed events held while waiting for a gap to be filled. Past this, they are read instead. */
export const MAX_PENDING_EVENTS = 1024;

/**
 * How long a seq gap may stay open before it is read. A server may push a process's events out of
 * order — codex sends `closed` before `exited` now and then (its own client says "a possibly-early
 * closed notification" and waits for the missing seq) — so the missing event usually follows; an
 * event that was dropped never does, and is read once this has passed.
 */
export const GAP_GRACE_MS = 250;

/**
 * Puts one process's pushed events in seq order and completes it from them alone when they arrive
 * complete and in order (zero `process/read` calls). It reads `process/read(afterSeq=last)` on a
 * seq gap still open after GAP_GRACE_MS, when the consumer of `events` lags its bounded buffer
 * under the `'read'` policy, and once after an `exited` event without `sandboxDenied` (a legacy
 * server). Output the server no longer retains is a failure.
 */
export class ProcessTracker {
  readonly completion: Promise<ProcessCompletion>;
  readonly events: EventQueue | null;
  private resolveCompletion!: (value: ProcessCompletion) => void;
  private rejectCompletion!: (error: Error) => void;
  private lastSeq = 0;
  private readonly pending = new Map<number, PushedProcessEvent>();
  private gapTimer: NodeJS.Timeout | undefined;
  private reading = false;
  private readRequested = false;
  private lagging = false;
  private exit: { exitCode: number; sandboxDenied: boolean | undefined } | null = null;
  private legacyReadDone = false;
  private closed = false;
  private finished = false;
  private readonly collected: Array<{ stream: string; chunk: Buffer }> = [];
  private collectedBytes = 0;
  private truncated = false;

  constructor(private readonly options: ProcessTrackerOptions) {
    this.completion = new Promise((resolve, reject) => {
      this.resolveCompletion = resolve;
      this.rejectCompletion = reject;
    });
    // A caller that only iterates events must not see an unhandled rejection.
    this.completion.catch(() => undefined);
    this.events =
      options.eventBufferBytes === null
        ? null
        : new EventQueue(options.eventBufferBytes, {
            onFull: () => {
              if (options.slowConsumer === 'pause') options.onBackpressure(true);
            },
            onDrained: () => {
              if (options.slowConsumer === 'pause') options.onBackpressure(false);
              else this.consumerDrained();
            },
          });
  }

  get done(): boolean {
    return this.finished;
  }

  push(event: PushedProcessEvent): void {
    if (this.finished || event.seq <= this.lastSeq) return;
    if (this.lagging) return; // read later, once the consumer catches up
    if (event.seq === this.lastSeq + 1 && !this.reading && this.pending.size === 0) {
      this.apply(event);
      return;
    }
    const held = this.pending.size < MAX_PENDING_EVENTS;
    if (held) this.pending.set(event.seq, event);
    if (!this.reading) this.drainPending();
    if (this.lagging || !held) this.requestRead();
    else if (this.pending.size > 0) this.awaitGap();
  }

  /** A gap is open: read it unless the missing events arrive within GAP_GRACE_MS. */
  private awaitGap(): void {
    if (this.gapTimer || this.reading) return;
    this.gapTimer = setTimeout(() => {
      this.gapTimer = undefined;
      if (this.pending.size > 0) this.requestRead();
    }, GAP_GRACE_MS);
    this.gapTimer.unref();
  }

  /**
   * The session was resumed on a new stream: pushed events sent meanwhile are lost, so read from
   * the last seq seen (what was missed, the exit, the close; a loss is an OutputLostError).
   */
  catchUp(): void {
    if (this.finished || this.lagging) return;
    this.requestRead();
  }

  /** Fails the process (transport lost and not recoverable, or similar). */
  fail(error: Error): void {
    if (this.finished) return;
    this.finished = true;
    this.events?.end(error);
    this.rejectCompletion(error);
  }

  private consumerDrained(): void {
    if (!this.lagging || this.finished) return;
    this.lagging = false;
    this.requestRead();
  }

  /** Applies one in-order event; returns false (and starts lagging) when the consumer is full. */
  private apply(event: PushedProcessEvent | ClientProcessEvent): boolean {
    const clientEvent = toClientEvent(event);
    if (this.events && !this.enqueue(clientEvent)) {
      this.lagging = true;
      this.pending.clear();
      return false;
    }
    if (event.seq > 0) this.lastSeq = event.seq;
    switch (clientEvent.type) {
      case 'output':
        this.collect(clientEvent.stream, clientEvent.chunk);
        break;
      case 'exited': {
        const raw = event as { sandboxDenied?: boolean };
        this.exit = { exitCode: clientEvent.exitCode, sandboxDenied: raw.sandboxDenied };
        if (raw.sandboxDenied === undefined && !this.legacyReadDone) this.requestRead();
        break;
      }
      case 'closed':
        this.closed = true;
        break;
    }
    this.maybeComplete();
    return true;
  }

  /** Hands an event to the consumer's buffer; false when the `'read'` policy refuses it (lagging). */
  private enqueue(event: ClientProcessEvent): boolean {
    if (this.options.slowConsumer === 'read') return this.events!.offer(event);
    this.events!.push(event);
    return true;
  }

  private drainPending(): void {
    for (;;) {
      for (const seq of this.pending.keys()) if (seq <= this.lastSeq) this.pending.delete(seq);
      if (this.pending.size === 0) this.clearGapTimer();
      const next = this.pending.get(this.lastSeq + 1);
      if (!next) return;
      this.pending.delete(next.seq);
      if (!this.apply(next)) return;
    }
  }

  private clearGapTimer(): void {
    clearTimeout(this.gapTimer);
    this.gapTimer = undefined;
  }

  private requestRead(): void {
    this.clearGapTimer();
    this.readRequested = true;
    if (!this.reading) void this.readLoop();
  }

  private async readLoop(): Promise<void> {
    this.reading = true;
    try {
      while (this.readRequested && !this.finished && !this.lagging) {
        this.readRequested = false;
        this.options.onReadIssued();
        const afterSeq = this.lastSeq;
        const result = await this.options.read(afterSeq);
        if (this.finished) return;
        if (this.outputWasLost(afterSeq, result)) {
          this.fail(new OutputLostError(afterSeq));
          return;
        }
        const caughtUp = this.applyReadResult(result);
        if (this.exit && this.exit.sandboxDenied === undefined) {
          this.exit.sandboxDenied = result.sandboxDenied ?? false;
        }
        this.legacyReadDone = true;
        if (!caughtUp) continue; // the consumer filled up; consumerDrained() re-requests
        this.drainPending();
        // More to fetch: the read may have been cut at its byte budget, or pushes still leave a gap.
        const returnedBytes = result.chunks.reduce((n, c) => n + c.chunk.length, 0);
        if (!this.closed && returnedBytes > READ_BUDGET_BYTES - MAX_CHUNK_BYTES) this.readRequested = true;
        if (this.pending.size > 0) this.readRequested = true;
        this.maybeComplete();
      }
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
    } finally {
      this.reading = false;
    }
  }

  /**
   * Whether output after `afterSeq` is gone. Our agent says so (`evictedThroughSeq`); a codex
   * server just starts at its oldest retained chunk, so a first chunk past `afterSeq + 1` that the
   * one possible event in between (an `exit` not yet seen) does not explain is a loss too.
   */
  private outputWasLost(afterSeq: number, result: ProcessReadResult): boolean {
    if (result.evictedThroughSeq != null) return result.evictedThroughSeq > afterSeq;
    const first = result.chunks[0];
    if (!first) return false;
    const unseenExit = this.exit === null && result.exited ? 1 : 0;
    return first.seq > afterSeq + 1 + unseenExit;
  }

  /** Applies a read result's chunks and terminal state; false if the consumer filled up midway. */
  private applyReadResult(result: ProcessReadResult): boolean {
    for (const chunk of result.chunks) {
      if (chunk.seq <= this.lastSeq) continue;
      if (!this.apply({ type: 'output', seq: chunk.seq, stream: chunk.stream, chunk: chunk.chunk })) return false;
    }
    if (result.exited && !this.exit) {
      const exitEvent: ClientProcessEvent = {
        type: 'exited',
        seq: 0,
        exitCode: result.exitCode ?? -1,
        sandboxDenied: result.sandboxDenied ?? false,
      };
      if (this.events && !this.enqueue(exitEvent)) {
        this.lagging = true;
        return false;
      }
      this.exit = { exitCode: exitEvent.exitCode, sandboxDenied: exitEvent.sandboxDenied };
    }
    if (result.closed && !this.closed) {
      if (this.events && !this.enqueue({ type: 'closed', seq: 0 })) {
        this.lagging = true;
        return false;
      }
      this.closed = true;
    }
    this.lastSeq = Math.max(this.lastSeq, result.nextSeq - 1);
    return true;
  }

  private collect(stream: string, chunk: Buffer): void {
    if (!this.options.collectOutput || this.truncated) return;
    if (this.collectedBytes + chunk.length > this.options.maxCollectedBytes) {
      this.truncated = true;
      return;
    }
    this.collected.push({ stream, chunk });
    this.collectedBytes += chunk.length;
  }

  private maybeComplete(): void {
    if (this.finished || !this.closed || !this.exit) return;
    if (this.exit.sandboxDenied === undefined) return; // the legacy read will tell
    this.finished = true;
    const pick = (stream?: string) =>
      Buffer.concat(this.collected.filter((c) => stream === undefined || c.stream === stream).map((c) => c.chunk));
    this.events?.end();
    this.resolveCompletion({
      exitCode: this.exit.exitCode,
      sandboxDenied: this.exit.sandboxDenied,
      output: pick(),
      stdout: pick('stdout'),
      stderr: pick('stderr'),
      outputTruncated: this.truncated,
    });
  }
}

function toClientEvent(event: PushedProcessEvent | ClientProcessEvent): ClientProcessEvent {
  switch (event.type) {
    case 'output':
      return { type: 'output', seq: event.seq, stream: event.stream, chunk: event.chunk };
    case 'exited':
      return { type: 'exited', seq: event.seq, exitCode: event.exitCode, sandboxDenied: event.sandboxDenied ?? false };
    case 'closed':
      return { type: 'closed', seq: event.seq };
  }
}
