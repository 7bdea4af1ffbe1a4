import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * One detached tmux session on its own server socket (a fresh directory, so that tests never meet
 * the user's tmux or each other): a real terminal a test types into (`send-keys`) and reads
 * (`capture-pane -p`), as a person would.
 */
export class TmuxPane {
  private constructor(private readonly socket: string) {}

  /** Starts `command` (a shell command line) in a detached session of `cols`x`rows`. */
  static async start(command: string, size: { cols: number; rows: number }, env: NodeJS.ProcessEnv = {}): Promise<TmuxPane> {
    const socket = path.join(mkdtempSync(path.join(os.tmpdir(), 'execrelay-tmux-')), 'socket');
    const pane = new TmuxPane(socket);
    await run('tmux', ['-S', socket, '-f', '/dev/null', 'new-session', '-d', '-s', 'test', '-x', String(size.cols), '-y', String(size.rows), command], {
      env: { ...process.env, ...env },
    });
    return pane;
  }

  private async tmux(...args: string[]): Promise<string> {
    return (await run('tmux', ['-S', this.socket, ...args])).stdout;
  }

  /** Types `text` literally, then Enter. */
  async typeLine(text: string): Promise<void> {
    await this.tmux('send-keys', '-t', 'test', '-l', text);
    await this.tmux('send-keys', '-t', 'test', 'Enter');
  }

  /** Sends tmux key names (`C-c`, `Escape`). */
  async keys(...names: string[]): Promise<void> {
    await this.tmux('send-keys', '-t', 'test', ...names);
  }

  /** What the pane shows now. */
  screen(): Promise<string> {
    return this.tmux('capture-pane', '-p', '-t', 'test');
  }

  async resize(size: { cols: number; rows: number }): Promise<void> {
    await this.tmux('resize-window', '-t', 'test', '-x', String(size.cols), '-y', String(size.rows));
  }

  /** Waits until the screen matches; fails with the screen when it does not within `timeoutMs`. */
  async waitFor(expected: RegExp, timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let screen = '';
    while (Date.now() < deadline) {
      screen = await this.screen().catch(() => screen);
      if (expected.test(screen)) return screen;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`the terminal did not show ${expected} within ${timeoutMs} ms; it shows:\n${screen}`);
  }

  /** The pid of the pane's own process (the command given to `start`). */
  async panePid(): Promise<number> {
    return Number((await this.tmux('list-panes', '-t', 'test', '-F', '#{pane_pid}')).trim());
  }

  async kill(): Promise<void> {
    await this.tmux('kill-server').catch(() => undefined);
  }
}
