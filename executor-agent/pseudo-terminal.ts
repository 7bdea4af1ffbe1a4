import { readSync } from 'node:fs';
import type { ReadStream } from 'node:tty';
import type * as NodePty from '@lydell/node-pty';
import { ErrorCode, RpcError } from '../src/protocol/error-codes.js';

export type PseudoTerminalModule = typeof NodePty;

/** The package that gives `tty: true` processes their PTY: node-pty with prebuilt binaries, no compiler needed. */
export const PTY_PACKAGE = '@lydell/node-pty';

/**
 * What is read from the master at most when node-pty closes it after the child's exit: the kernel's
 * pty buffer holds a few KiB; more only comes from a process that outlived the child and still writes.
 */
const DRAIN_LIMIT_BYTES = 1024 * 1024;

let loading: Promise<PseudoTerminalModule> | undefined;

/**
 * The PTY library, loaded on the first `tty: true` process rather than at start, so an agent whose
 * install has no PTY binary (an unsupported platform, `npm install --omit=optional`) still runs
 * everything else; `tty: true` then fails with an RpcError that says so, and the agent carries on.
 */
export async function loadPseudoTerminal(): Promise<PseudoTerminalModule> {
  loading ??= import(PTY_PACKAGE).then((loaded: PseudoTerminalModule & { default?: PseudoTerminalModule }) => {
    const library = typeof loaded.spawn === 'function' ? loaded : loaded.default;
    if (typeof library?.spawn !== 'function') throw new Error(`${PTY_PACKAGE} has no spawn()`);
    return library;
  });
  try {
    return await loading;
  } catch (error) {
    const reason = ((error as Error).message ?? String(error)).split('\n')[0];
    throw new RpcError(
      ErrorCode.Internal,
      `this agent has no PTY support: install ${PTY_PACKAGE} with its platform package (npm install without --omit=optional; prebuilt for linux, darwin and win32 on x64 and arm64), or run without tty (${reason})`,
    );
  }
}

export interface PseudoTerminalOptions {
  name: string;
  cols: number;
  rows: number;
  cwd: string;
  env: Record<string, string>;
}

/** The parts of node-pty's UnixTerminal (1.1.0, unixTerminal.js) this file relies on: the master's stream and fd. */
interface UnixTerminalInternals {
  _socket?: ReadStream;
  _fd?: number;
}

/**
 * A child process on a pseudo-terminal, its output raw bytes, none of it lost at the end.
 *
 * node-pty closes the master 200 ms after the child's exit unless the master has reported EIO by
 * then (unixTerminal.js, DESTROY_SOCKET_TIMEOUT_MS), and a close drops what was not read yet: the
 * bytes in the stream's buffer (node reads on while paused, up to its high-water mark) and those
 * still in the kernel. That happens whenever output is paused for a slow client when the child
 * exits, and when this process's event loop is busy for 200 ms after the exit (a loaded machine):
 * the timer runs before the poll that would have read the rest. So the close is taken over here:
 * first everything already read and everything the kernel still holds is collected (the master is
 * non-blocking: EAGAIN or EIO ends it), then the master closes as node-pty meant. Output is held
 * while paused and handed on at `resume`; `onEnd` follows the last byte.
 */
export class PseudoTerminal {
  private dataListener: (data: Buffer) => void = () => {};
  private exitListener: (exitCode: number, signal: number) => void = () => {};
  private endListener: () => void = () => {};
  private paused = false;
  private readonly held: Buffer[] = [];
  private closed = false;
  private ended = false;
  private releasing = false;

  private constructor(private readonly terminal: NodePty.IPty) {
    // With `encoding: null` node-pty hands on Buffers; its typings only know strings.
    terminal.onData((data) => this.deliver(data as unknown as Buffer));
    terminal.onExit(({ exitCode, signal }) => {
      // node-pty reports the exit once the master has closed: no data can follow.
      this.closed = true;
      this.exitListener(exitCode, signal ?? 0);
      this.endIfDone();
    });
    this.takeOverClose(terminal as unknown as UnixTerminalInternals);
  }

  /** Spawns `file` on a new pseudo-terminal; throws as node-pty does when it cannot. */
  static spawn(library: PseudoTerminalModule, file: string, args: string[], options: PseudoTerminalOptions): PseudoTerminal {
    return new PseudoTerminal(library.spawn(file, args, { ...options, encoding: null }));
  }

  get pid(): number {
    return this.terminal.pid;
  }

  /** The child's output, in order; none while paused. */
  onData(listener: (data: Buffer) => void): void {
    this.dataListener = listener;
  }

  /** The child's exit (a signal's number, or 0); output held while paused may still follow. */
  onExit(listener: (exitCode: number, signal: number) => void): void {
    this.exitListener = listener;
  }

  /** After the child's exit and its last output. */
  onEnd(listener: () => void): void {
    this.endListener = listener;
  }

  write(data: Buffer): void {
    // node-pty writes what it is given to the master's stream: a Buffer goes as bytes, unconverted.
    this.terminal.write(data as unknown as string);
  }

  resize(cols: number, rows: number): void {
    this.terminal.resize(cols, rows);
  }

  pause(): void {
    this.paused = true;
    this.terminal.pause();
  }

  resume(): void {
    this.paused = false;
    this.terminal.resume();
    if (this.held.length > 0 && !this.releasing) {
      this.releasing = true;
      setImmediate(() => this.releaseHeld());
    }
  }

  private releaseHeld(): void {
    this.releasing = false;
    while (!this.paused && this.held.length > 0) this.dataListener(this.held.shift()!);
    this.endIfDone();
  }

  private deliver(data: Buffer): void {
    if (data.length === 0) return;
    if (this.paused || this.held.length > 0) this.held.push(data);
    else this.dataListener(data);
  }

  private endIfDone(): void {
    if (this.ended || !this.closed || this.held.length > 0) return;
    this.ended = true;
    this.endListener();
  }

  /**
   * Wraps the master stream's `destroy` for this terminal: a close without an error (node-pty's
   * timer after the exit, or a close requested here) first collects the unread output. A close for
   * an error (EIO: the child side is gone and everything was read) goes ahead unchanged.
   */
  private takeOverClose(internals: UnixTerminalInternals): void {
    const socket = internals._socket;
    const fd = internals._fd;
    if (!socket || typeof socket.destroy !== 'function' || typeof fd !== 'number') return;
    const destroy = socket.destroy;
    const collect = (): void => {
      // What node already read: `read()` hands it to the 'data' listeners, so it reaches `deliver`.
      while (socket.readableLength > 0 && socket.read() !== null);
      const buffer = Buffer.allocUnsafe(64 * 1024);
      for (let total = 0; total < DRAIN_LIMIT_BYTES; ) {
        let bytes: number;
        try {
          bytes = readSync(fd, buffer, 0, buffer.length, null);
        } catch {
          return; // EAGAIN (nothing more now), EIO (the child side is closed and drained), EBADF
        }
        if (bytes === 0) return;
        this.deliver(Buffer.from(buffer.subarray(0, bytes)));
        total += bytes;
      }
    };
    socket.destroy = function (this: ReadStream, error?: Error) {
      if (error === undefined && !this.destroyed) collect();
      return destroy.call(this, error);
    } as ReadStream['destroy'];
  }
}
