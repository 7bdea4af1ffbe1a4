import { constants as osConstants } from 'node:os';
import type { PtySize } from '../src/protocol/process.js';

/** Signals after which `exec -t` restores the terminal before it ends (in raw mode Ctrl-C is a byte, not SIGINT). */
const RESTORING_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'] as const;

/**
 * The local terminal of `execrelay exec -t` (stdin a TTY): raw mode while the remote command runs,
 * so that every key (Ctrl-C, arrows, Escape) goes to the remote pty; cooked mode again on
 * `restore()`, on the process's exit and on a terminating signal. Its size is read from stdout (or
 * stderr when stdout is redirected), and `onResize` follows the window's changes (SIGWINCH).
 */
export class LocalTerminal {
  private restored = false;
  private readonly signalHandlers = new Map<NodeJS.Signals, () => void>();
  private readonly resizeListeners: Array<() => void> = [];
  private readonly onExit = () => this.restore();

  private constructor(
    private readonly stdin: NodeJS.ReadStream,
    private readonly sizeSource: NodeJS.WriteStream | undefined,
  ) {}

  /**
   * Enters raw mode when stdin is a TTY (undefined otherwise). `onSignal` runs after the terminal
   * is restored, with the exit status the signal stands for (128 + N).
   */
  static enterRawMode(onSignal: (exitStatus: number) => void): LocalTerminal | undefined {
    const stdin = process.stdin;
    if (stdin.isTTY !== true) return undefined;
    const sizeSource = process.stdout.isTTY === true ? process.stdout : process.stderr.isTTY === true ? process.stderr : undefined;
    const terminal = new LocalTerminal(stdin, sizeSource);
    stdin.setRawMode(true);
    process.once('exit', terminal.onExit);
    for (const signal of RESTORING_SIGNALS) {
      const handler = () => {
        terminal.restore();
        onSignal(128 + (osConstants.signals[signal] ?? 0));
      };
      terminal.signalHandlers.set(signal, handler);
      process.on(signal, handler);
    }
    return terminal;
  }

  /** The window's size in character cells, when a TTY output tells it. */
  size(): PtySize | undefined {
    const cols = this.sizeSource?.columns;
    const rows = this.sizeSource?.rows;
    return cols && rows ? { cols, rows } : undefined;
  }

  /** Calls `listener` with the new size on every window change. */
  onResize(listener: (size: PtySize) => void): void {
    const source = this.sizeSource;
    if (!source) return;
    const handler = () => {
      const size = this.size();
      if (size) listener(size);
    };
    source.on('resize', handler);
    this.resizeListeners.push(() => source.off('resize', handler));
  }

  /** Cooked mode again, the handlers removed. Idempotent. */
  restore(): void {
    if (this.restored) return;
    this.restored = true;
    try {
      this.stdin.setRawMode(false);
    } catch {
      /* the terminal is gone (hangup) */
    }
    process.off('exit', this.onExit);
    for (const [signal, handler] of this.signalHandlers) process.off(signal, handler);
    for (const remove of this.resizeListeners) remove();
  }
}
