import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { ManagedProcess, OUTPUT_BATCH_MAX_BYTES, type ProcessEvent } from '../../../executor-agent/managed-process.js';

async function run(script: string) {
  const events: ProcessEvent[] = [];
  let done: () => void = () => {};
  const closed = new Promise<void>((resolve) => (done = resolve));
  await ManagedProcess.start(
    { processId: 'p', argv: ['sh', '-c', script], cwd: os.tmpdir(), env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, tty: false, pipeStdin: false, arg0: null } as never,
    {
      onEvent: (event) => {
        events.push(event);
        if (event.type === 'closed') done();
      },
    },
  );
  await closed;
  return events;
}

describe('ManagedProcess output batching (pipe reads of one turn in one event)', () => {
  it('sends a burst of small writes in fewer events of at most OUTPUT_BATCH_MAX_BYTES, bytes and seqs intact', async () => {
    // 8 MiB written 4 KiB at a time, as head does.
    const events = await run('head -c 8388608 /dev/zero | dd bs=4096 2>/dev/null');
    const outputs = events.filter((e) => e.type === 'output');
    const total = outputs.reduce((n, e) => n + e.chunk.length, 0);
    expect(total).toBe(8 * 1024 * 1024);
    expect(Math.max(...outputs.map((e) => e.chunk.length))).toBeLessThanOrEqual(OUTPUT_BATCH_MAX_BYTES);
    expect(outputs.length).toBeLessThan(8 * 1024 * 1024 / 4096);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.slice(-2).map((e) => e.type)).toEqual(['exited', 'closed']);
  });

  it('keeps the order between stdout and stderr and sends the last output before exited', async () => {
    const events = await run('for i in 1 2 3 4 5; do printf "o$i"; printf "e$i" >&2; done; printf end');
    const outputs = events.filter((e) => e.type === 'output');
    expect(outputs.filter((e) => e.stream === 'stdout').map((e) => e.chunk.toString()).join('')).toBe('o1o2o3o4o5end');
    expect(outputs.filter((e) => e.stream === 'stderr').map((e) => e.chunk.toString()).join('')).toBe('e1e2e3e4e5');
    expect(events.slice(-2).map((e) => e.type)).toEqual(['exited', 'closed']);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
  });
});
