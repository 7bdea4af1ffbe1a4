import { pathToFileURL } from 'node:url';
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { eventually } from '../../support/resilience-helpers.js';
import { ManagedProcess, type ProcessEvent } from '../../../executor-agent/managed-process.js';
import { ProcessStartParams } from '../../../src/protocol/process.js';

/** Starts `argv` on a pseudo-terminal; resolves `closed` with every event. */
async function startTty(argv: string[]) {
  const events: ProcessEvent[] = [];
  let onClosed!: () => void;
  const closed = new Promise<void>((resolve) => (onClosed = resolve));
  const params = ProcessStartParams.parse({ processId: 'p1', argv, cwd: pathToFileURL(os.tmpdir()).href, tty: true });
  const proc = await ManagedProcess.start(params, {
    onEvent: (event) => {
      events.push(event);
      if (event.type === 'closed') onClosed();
    },
  });
  return { proc, events, closed };
}

const output = (events: ProcessEvent[]) =>
  Buffer.concat(events.filter((e): e is Extract<ProcessEvent, { type: 'output' }> => e.type === 'output').map((e) => e.chunk));

describe('ManagedProcess: a tty process keeps all of its output', () => {
  it('hands on output unread when the child exited while output was paused, after the resume', async () => {
    // 12,000 bytes: more than node reads ahead into a paused stream (4 KiB), less than the child can
    // leave in the kernel and still exit. node-pty on its own closes the master 200 ms after the exit
    // and drops both parts.
    const { proc, events, closed } = await startTty(['sh', '-c', 'head -c 12000 /dev/zero | tr "\\0" x; printf END; exit 7']);
    proc.pauseOutput();
    await eventually(async () => proc.exited, 10_000, 'the exit');
    await new Promise((resolve) => setTimeout(resolve, 400)); // well past node-pty's 200 ms
    expect(proc.closed).toBe(false);
    const before = output(events).length;
    proc.resumeOutput();
    await closed;
    const all = output(events).toString('latin1');
    expect(all).toBe(`${'x'.repeat(12_000)}END`);
    expect(before).toBeLessThan(all.length);
    const exited = events.find((e) => e.type === 'exited');
    expect(exited).toMatchObject({ exitCode: 7 });
    expect(events.at(-1)?.type).toBe('closed');
  });

  it('passes bytes that are not UTF-8 through unchanged, both ways', async () => {
    // Raw mode without echo: the terminal neither converts nor repeats what is written.
    const { proc, events, closed } = await startTty([
      'sh',
      '-c',
      'stty raw -echo; printf "\\377\\376\\200"; head -c 3 | od -An -tx1 | tr -d " \\n"',
    ]);
    await eventually(async () => output(events).length >= 3, 10_000, 'the first output');
    proc.write(Buffer.from([0xff, 0x00, 0xc3]), null, false);
    await closed;
    const all = output(events);
    expect(all.subarray(0, 3)).toEqual(Buffer.from([0xff, 0xfe, 0x80]));
    expect(all.subarray(3).toString('latin1')).toContain('ff00c3');
  });
});
