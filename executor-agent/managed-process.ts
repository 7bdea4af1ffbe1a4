import { constants as osConstants } from 'node:os';
import { stat, access, constants as fsConstants } from 'node:fs/promises';
import path from 'node:path';
import { COMMAND_NOT_FOUND_DATA, ErrorCode, RpcError } from '../src/protocol/error-codes.js';
import { PTY_SIZE_LIMITS, type OutputStream, type ProcessSignalName, type ProcessStartParams, type PtySize, type WriteStatus } from '../src/protocol/process.js';
import { buildChildEnvironment } from './child-environment.js';
import { OutputLog, DEFAULT_RETAINED_OUTPUT_BYTES, type RetainedChunk } from './output-log.js';
import { loadPseudoTerminal, PseudoTerminal } from './pseudo-terminal.js';
import { processSpawner, SpawnError, type SpawnedChild } from './process-spawner.js';

export type ProcessEvent =
  | { type: 'output'; seq: number; stream: OutputStream; chunk: Buffer }
  | { type: 'exited'; seq: number; exitCode: number; sandboxDenied: boolean }
  | { type: 'closed'; seq: number };

export interface ManagedProcessOptions {
  retainedOutputBytes?: number;
  /** Grace between SIGTERM and SIGKILL on `process/terminate`. */
  terminateGraceMs?: number;
  /** How long `exited` waits for the output pipes to drain so it follows the last output. */
  exitDrainGraceMs?: number;
  onEvent: (event: ProcessEvent) => void;
  /**
   * True while an output message pushed earlier is still being sent on the attached connection:
   * pipe output (never pty output) read meanwhile is coalesced into one bigger `output` event,
   * up to COALESCED_OUTPUT_BYTES, published by `flushCoalescedOutput` (the connection calls it
   * once its sends settled) or when the bound, another stream's output, or the stream's end comes.
   */
  outputInFlight?: () => boolean;
  onFinished?: (result: 'success' | 'failure' | 'signaled', durationMs: number) => void;
}

export interface ReadSnapshot {
  chunks: RetainedChunk[];
  nextSeq: number;
  exited: boolean;
  exitCode: number | null;
  closed: boolean;
  failure: string | null;
  sandboxDenied: boolean;
  evictedThroughSeq: number | null;
}

const SIGNALS: Record<ProcessSignalName, NodeJS.Signals> = {
  interrupt: 'SIGINT',
  terminate: 'SIGTERM',
  kill: 'SIGKILL',
  hangup: 'SIGHUP',
  quit: 'SIGQUIT',
};


/** How many recent writeIds each process remembers for retry dedupe. */
const REMEMBERED_WRITE_IDS = 1024;
/**
 * Most bytes of pipe output coalesced into one `output` event while a send is in flight (see
 * `ManagedProcessOptions.outputInFlight`): fewer, bigger messages when the connection is the
 * bottleneck; a quarter of the retained window (DEFAULT_RETAINED_OUTPUT_BYTES).
 */
export const COALESCED_OUTPUT_BYTES = 256 * 1024;

/**
 * One child process spawned for a session: its own process group (so signals reach the whole
 * tree), a seq counter shared by output/exited/closed events, and the newest output retained.
 */
export class ManagedProcess {
  private nextSeqValue = 1;
  private readonly log: OutputLog;
  private exitSeq: number | null = null;
  private exitCodeValue: number | null = null;
  private closedSeq: number | null = null;
  private pendingExitCode: number | null = null;
  private readonly openStreams = new Set<OutputStream>();
  private readonly waiters = new Set<() => void>();
  private readonly writeIds = new Set<string>();
  private stdinEnded = false;
  private killTimer: NodeJS.Timeout | undefined;
  private drainTimer: NodeJS.Timeout | undefined;
  /** Pipe output read while a send was in flight, not yet published (one stream's, in order). */
  private coalesced: Buffer[] = [];
  private coalescedBytes = 0;
  private coalescedStream: OutputStream | undefined;
  private readonly startedAt = Date.now();
  private terminateRequested = false;

  private constructor(
    readonly processId: string,
    readonly tty: boolean,
    readonly pipeStdin: boolean,
    private readonly child: SpawnedChild | undefined,
    private readonly terminal: PseudoTerminal | undefined,
    private readonly options: ManagedProcessOptions,
  ) {
    this.log = new OutputLog(options.retainedOutputBytes ?? DEFAULT_RETAINED_OUTPUT_BYTES);
  }

  /** Spawns the process; rejects with an RpcError (and spawns nothing) when it cannot start. */
  static async start(params: ProcessStartParams, options: ManagedProcessOptions): Promise<ManagedProcess> {
    await assertDirectory(params.cwd);
    const env = buildChildEnvironment(params.env, params.envPolicy);
    const [program, ...args] = params.argv as [string, ...string[]];
    if (params.tty) {
      const pty = await loadPseudoTerminal();
      const file = await resolveExecutable(program, env.PATH, params.cwd);
      let terminal: PseudoTerminal;
      try {
        const cols = params.ptySize?.cols ?? PTY_SIZE_LIMITS.defaultCols;
        const rows = params.ptySize?.rows ?? PTY_SIZE_LIMITS.defaultRows;
        terminal = PseudoTerminal.spawn(pty, file, args, { name: env.TERM ?? 'xterm-256color', cols, rows, cwd: params.cwd, env });
      } catch (error) {
        throw new RpcError(ErrorCode.Internal, `failed to start process: ${(error as Error).message}`);
      }
      const proc = new ManagedProcess(params.processId, true, false, undefined, terminal, options);
      proc.attachTerminal(terminal);
      return proc;
    }
    let child: SpawnedChild;
    try {
      child = await processSpawner().spawn({ file: program, args, cwd: params.cwd, env, argv0: params.arg0 ?? undefined, pipeStdin: params.pipeStdin });
    } catch (error) {
      if (error instanceof SpawnError && error.code === 'ENOENT') throw new RpcError(ErrorCode.Internal, `failed to start process: ${program}: command not found`, COMMAND_NOT_FOUND_DATA);
      throw new RpcError(ErrorCode.Internal, `failed to start process: ${(error as Error).message}`);
    }
    const proc = new ManagedProcess(params.processId, false, params.pipeStdin, child, undefined, options);
    proc.attachChild(child);
    return proc;
  }

  get pid(): number | undefined {
    return this.child?.pid ?? this.terminal?.pid;
  }

  get exited(): boolean {
    return this.exitSeq !== null;
  }

  get closed(): boolean {
    return this.closedSeq !== null;
  }

  get nextSeq(): number {
    return this.nextSeqValue;
  }

  /** The retained state as seen from cursor `afterSeq`: flags cover only seqs below `nextSeq`. */
  read(afterSeq: number, maxBytes: number): ReadSnapshot {
    const { chunks, truncated } = this.log.after(afterSeq, maxBytes);
    const nextSeq = truncated ? chunks[chunks.length - 1]!.seq + 1 : this.nextSeqValue;
    const exited = this.exitSeq !== null && this.exitSeq < nextSeq;
    const evicted = this.log.evictedThroughSeq > afterSeq ? this.log.evictedThroughSeq : null;
    return {
      chunks,
      nextSeq,
      exited,
      exitCode: exited ? this.exitCodeValue : null,
      closed: this.closedSeq !== null && this.closedSeq < nextSeq,
      failure: null,
      sandboxDenied: false,
      evictedThroughSeq: evicted,
    };
  }

  /** Resolves when an event with seq > afterSeq exists, after `waitMs`, or when `signal` aborts. */
  waitForEvent(afterSeq: number, waitMs: number, signal: AbortSignal): Promise<void> {
    if (this.nextSeqValue - 1 > afterSeq || this.closed || waitMs <= 0 || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, waitMs);
      signal.addEventListener('abort', done, { once: true });
      this.waiters.add(done);
    });
  }

  write(bytes: Buffer, writeId: string | null | undefined, closeStdin: boolean): WriteStatus {
    if (writeId) {
      if (this.writeIds.has(writeId)) return 'accepted';
      this.writeIds.add(writeId);
      if (this.writeIds.size > REMEMBERED_WRITE_IDS) this.writeIds.delete(this.writeIds.values().next().value!);
    }
    if (this.terminal) {
      if (this.exited) return 'stdinClosed';
      if (bytes.length > 0) this.terminal.write(bytes);
      return 'accepted';
    }
    const stdin = this.child?.stdin;
    if (!stdin || this.stdinEnded || stdin.destroyed || stdin.writableEnded) return 'stdinClosed';
    if (bytes.length > 0) stdin.write(bytes);
    if (closeStdin) {
      this.stdinEnded = true;
      stdin.end();
    }
    return 'accepted';
  }

  /**
   * Resizes the terminal of a tty process (the kernel sends SIGWINCH to its foreground group).
   * Returns false for a process without a terminal; after its exit a resize changes nothing.
   */
  resize(size: PtySize): boolean {
    if (!this.terminal) return false;
    if (this.exited || this.pendingExitCode !== null) return true;
    try {
      this.terminal.resize(size.cols, size.rows);
    } catch {
      /* the terminal closed between the exit and its notice: nothing to resize */
    }
    return true;
  }

  /**
   * Stops reading the child's output (it blocks once its pipe fills) until `resumeOutput`: the
   * way backpressure from a slow client reaches the process instead of output being dropped.
   */
  pauseOutput(): void {
    this.child?.stdout.pause();
    this.child?.stderr.pause();
    this.terminal?.pause();
  }

  resumeOutput(): void {
    this.child?.stdout.resume();
    this.child?.stderr.resume();
    this.terminal?.resume();
  }

  signal(name: ProcessSignalName): void {
    this.sendToGroup(SIGNALS[name]);
  }

  /** SIGTERM to the group, SIGKILL after the grace period. Returns whether it was still running. */
  terminate(): boolean {
    if (this.exited || this.pendingExitCode !== null) return false;
    this.terminateRequested = true;
    this.sendToGroup('SIGTERM');
    this.killTimer ??= setTimeout(() => this.sendToGroup('SIGKILL'), this.options.terminateGraceMs ?? 2000);
    this.killTimer.unref();
    return true;
  }

  /** Immediate SIGKILL of the whole group (session expiry, agent shutdown). */
  kill(): void {
    if (this.exited || this.pendingExitCode !== null) return;
    this.sendToGroup('SIGKILL');
  }

  private sendToGroup(signal: NodeJS.Signals): void {
    const pid = this.pid;
    if (pid === undefined || this.exited || this.pendingExitCode !== null) return;
    try {
      process.kill(-pid, signal);
    } catch {
      try {
        process.kill(pid, signal);
      } catch {
        /* already gone */
      }
    }
  }

  private attachChild(child: SpawnedChild): void {
    for (const [stream, readable] of [
      ['stdout', child.stdout],
      ['stderr', child.stderr],
    ] as const) {
      this.openStreams.add(stream);
      readable.on('data', (data: Buffer) => this.receivePipeOutput(stream, data));
      readable.on('close', () => this.streamEnded(stream));
      readable.on('error', () => this.streamEnded(stream));
      // Closed before these listeners (a child that exited at once, its socket at EOF while the
      // spawner's answer was on its way): a socket closes only once read to its end.
      if (readable.destroyed) this.streamEnded(stream);
    }
    child.stdin?.on('error', () => {
      this.stdinEnded = true;
    });
    child.onExit((code, signal) => {
      this.processExited(code ?? 128 + (signal ? (osConstants.signals[signal] ?? 0) : 0));
    });
  }

  private attachTerminal(terminal: PseudoTerminal): void {
    this.openStreams.add('pty');
    terminal.onData((data) => this.emitOutput('pty', data));
    terminal.onExit((exitCode, signal) => this.processExited(signal ? 128 + signal : exitCode));
    terminal.onEnd(() => this.streamEnded('pty'));
  }

  private nextEventSeq(): number {
    return this.nextSeqValue++;
  }

  /** Publishes the output coalesced while a send was in flight, as one `output` event. */
  flushCoalescedOutput(): void {
    if (this.coalescedBytes === 0) return;
    const chunks = this.coalesced;
    const stream = this.coalescedStream!;
    const bytes = this.coalescedBytes;
    this.coalesced = [];
    this.coalescedBytes = 0;
    this.coalescedStream = undefined;
    this.emitOutput(stream, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, bytes));
  }

  /** Pipe output: published at once, or coalesced behind a send in flight (see `outputInFlight`). */
  private receivePipeOutput(stream: OutputStream, chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.coalescedStream !== stream || this.coalescedBytes + chunk.length > COALESCED_OUTPUT_BYTES) this.flushCoalescedOutput();
    if (this.options.outputInFlight?.() !== true) {
      this.flushCoalescedOutput();
      this.emitOutput(stream, chunk);
      return;
    }
    this.coalesced.push(chunk);
    this.coalescedBytes += chunk.length;
    this.coalescedStream = stream;
  }

  private emitOutput(stream: OutputStream, chunk: Buffer): void {
    if (chunk.length === 0) return;
    const seq = this.nextEventSeq();
    this.log.append({ seq, stream, chunk });
    this.publish({ type: 'output', seq, stream, chunk });
  }

  private processExited(code: number): void {
    if (this.pendingExitCode !== null || this.exited) return;
    this.pendingExitCode = code;
    if (this.killTimer) clearTimeout(this.killTimer);
    if (this.openStreams.size === 0) {
      this.publishExit();
      return;
    }
    // Let the pipes drain so `exited` follows the last output; a grandchild holding a pipe open
    // must not delay it forever.
    this.drainTimer = setTimeout(() => this.publishExit(), this.options.exitDrainGraceMs ?? 250);
    this.drainTimer.unref();
  }

  private publishExit(): void {
    if (this.exited || this.pendingExitCode === null) return;
    if (this.drainTimer) clearTimeout(this.drainTimer);
    this.flushCoalescedOutput();
    const exitCode = this.pendingExitCode;
    const seq = this.nextEventSeq();
    this.exitSeq = seq;
    this.exitCodeValue = exitCode;
    this.publish({ type: 'exited', seq, exitCode, sandboxDenied: false });
    const result = exitCode === 0 ? 'success' : exitCode > 128 || this.terminateRequested ? 'signaled' : 'failure';
    this.options.onFinished?.(result, Date.now() - this.startedAt);
    this.maybeClose();
  }

  private streamEnded(stream: OutputStream): void {
    if (!this.openStreams.has(stream)) return;
    this.flushCoalescedOutput();
    this.openStreams.delete(stream);
    if (this.openStreams.size === 0 && this.pendingExitCode !== null) this.publishExit();
    this.maybeClose();
  }

  private maybeClose(): void {
    if (this.closed || !this.exited || this.openStreams.size > 0) return;
    const seq = this.nextEventSeq();
    this.closedSeq = seq;
    this.publish({ type: 'closed', seq });
  }

  private publish(event: ProcessEvent): void {
    this.options.onEvent(event);
    for (const wake of [...this.waiters]) wake();
  }
}

async function assertDirectory(cwd: string): Promise<void> {
  let info;
  try {
    info = await stat(cwd);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new RpcError(ErrorCode.NotFound, `cwd does not exist: ${cwd}`);
    throw new RpcError(ErrorCode.Internal, `cwd is not accessible: ${(error as Error).message}`);
  }
  if (!info.isDirectory()) throw new RpcError(ErrorCode.InvalidParams, `invalid params: cwd: not a directory: ${cwd}`);
}

/** PATH lookup for PTY spawns, which otherwise fail inside the forked child with no clear error. */
async function resolveExecutable(program: string, searchPath: string | undefined, cwd: string): Promise<string> {
  const candidates = program.includes('/')
    ? [path.resolve(cwd, program)]
    : (searchPath ?? '/usr/local/bin:/usr/bin:/bin').split(':').filter(Boolean).map((dir) => path.join(dir, program));
  for (const candidate of candidates) {
    try {
      await access(candidate, fsConstants.X_OK);
      const info = await stat(candidate);
      if (info.isFile()) return candidate;
    } catch {
      /* try the next one */
    }
  }
  throw new RpcError(ErrorCode.Internal, `failed to start process: ${program}: command not found`, COMMAND_NOT_FOUND_DATA);
}
