import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH, startCli } from '../support/cli.js';
import { TmuxPane } from '../support/tmux-pane.js';

/** Shell-quotes one word for the command line typed into the pane. */
const quote = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;

describe('exec -t in a real terminal (tmux)', () => {
  let agent: Awaited<ReturnType<typeof startCli>>;
  let pane: TmuxPane;

  beforeAll(async () => {
    agent = await startCli(['agent', '--listen', 'ws://127.0.0.1:0']);
    // The local shell of the terminal; its prompt tells it from the remote one.
    pane = await TmuxPane.start(`env PS1='LOCAL> ' bash --norc --noprofile -i`, { cols: 100, rows: 30 });
    await pane.waitFor(/^LOCAL>$/m);
  });
  afterAll(async () => {
    await pane?.kill();
    await agent?.stop();
  });

  it('gives the remote shell the local size and its changes, a working editor and Ctrl-C, and restores the terminal', async () => {
    await pane.typeLine(
      `${quote(process.execPath)} ${quote(CLI_PATH)} exec -t --url ${agent.firstLine} -e 'PS1=REMOTE> ' -- bash --norc --noprofile -i`,
    );
    await pane.waitFor(/^REMOTE>$/m);

    // The local terminal is in raw mode while the remote shell runs (checked from the remote side:
    // its own pty is cooked, so `stty size` is the remote terminal's size).
    await pane.typeLine('stty size');
    await pane.waitFor(/^30 100$/m);

    await pane.resize({ cols: 120, rows: 40 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await pane.typeLine('stty size');
    await pane.waitFor(/^40 120$/m);

    // Ctrl-C reaches the remote shell's foreground job, not the client: the shell goes on.
    await pane.typeLine('sleep 30; echo slept-through');
    await new Promise((resolve) => setTimeout(resolve, 500));
    await pane.keys('C-c');
    await pane.typeLine('echo alive-$((40+2))');
    const afterInterrupt = await pane.waitFor(/^alive-42$/m, 10_000);
    expect(afterInterrupt).not.toMatch(/^slept-through$/m);

    // A full-screen editor opens at the terminal's size and quits.
    await pane.typeLine('vi -u NONE /tmp/execrelay-tty-test-file');
    await pane.waitFor(/execrelay-tty-test-file/);
    await pane.keys('Escape');
    await pane.typeLine(':q!');
    await pane.typeLine('echo vi-closed-$((1+1))');
    await pane.waitFor(/^vi-closed-2$/m);

    // The remote exit status comes back, and the local terminal is cooked again.
    await pane.typeLine('exit 7');
    await pane.waitFor(/^LOCAL>$/m);
    await pane.typeLine('echo rc=$?; stty -a | tr " " "\\n" | grep -x -e icanon -e -icanon -e echo -e -echo');
    await pane.waitFor(/^rc=7$/m);
    const restored = await pane.waitFor(/^-?echo$/m);
    const lines = restored.split('\n').map((line) => line.trim());
    expect(lines).toContain('icanon');
    expect(lines).toContain('echo');
    expect(lines).not.toContain('-icanon');
  });

  it('restores the terminal when the client is killed by a signal', async () => {
    await pane.typeLine('clear');
    await pane.waitFor(/^LOCAL>$/m);
    await pane.typeLine(`${quote(process.execPath)} ${quote(CLI_PATH)} exec -t --url ${agent.firstLine} -e 'PS1=REMOTE2> ' -- bash --norc --noprofile -i`);
    await pane.waitFor(/^REMOTE2>$/m);
    // The client is the one child of the pane's local shell.
    const { stdout } = await promisify(execFile)('pgrep', ['-P', String(await pane.panePid())]);
    const pids = stdout.trim().split('\n').map(Number);
    expect(pids).toHaveLength(1);
    process.kill(pids[0]!, 'SIGTERM');
    // The local prompt comes back on the remote prompt's line: after it ("REMOTE2> LOCAL>") or, when
    // the local shell returns the cursor to the line's start first, over it ("LOCAL> " over
    // "REMOTE2> " leaves "LOCAL> >").
    await pane.waitFor(/LOCAL>(?: >)?$/m);
    await pane.typeLine('echo rc=$?; stty -a | tr " " "\\n" | grep -x -e icanon -e -icanon');
    await pane.waitFor(/^rc=143$/m);
    const restored = await pane.waitFor(/^-?icanon$/m);
    const lines = restored.split('\n').map((line) => line.trim());
    expect(lines).toContain('icanon');
    expect(lines).not.toContain('-icanon');
  });
});
