import { pathToFileURL } from 'node:url';
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { COALESCED_OUTPUT_BYTES, ManagedProcess, type ProcessEvent } from '../../../executor-agent/managed-process.js';
import { ProcessStartParams } from '../../../src/protocol/process.js';

/** Starts `argv` with a controllable "send in flight" flag; resolves `closed` with every event. */
async function start(argv: string[], options: { pipeStdin?: boolean } = {}) {
  const events: ProcessEvent[] = [];
  const state = { inFlight: true, asked: 0 };
  let onClosed!: () => void;
  const closed = new Promise<void>((resolve) => (onClosed = resolve));
  const params = ProcessStartParams.parse({ processId: 'p1', argv, cwd: pathToFileURL(os.tmpdir()).href, pipeStdin: options.pipeStdin ?? false });
  const proc = await ManagedProcess.start(params, {
    onEvent: (event) => {
      events.push(event);
      if (event.type === 'closed') onClosed();
    },
    outputInFlight: () => {
      state.asked++;
      return state.inFlight;
    },
  });
  return { proc, events, state, closed };
}

const outputs = (events: ProcessEvent[]) => events.filter((e): e is Extract<ProcessEvent, { type: 'output' }> => e.type === 'output');

async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('ManagedProcess: output coalesced behind a send in flight', () => {
  it('holds pipe output while a send is in flight and publishes it as one event before exited', async () => {
    const { events, closed } = await start(['sh', '-c', 'printf a; sleep 0.05; printf b; sleep 0.05; printf c']);
    await closed;
    expect(events.map((e) => e.type)).toEqual(['output', 'exited', 'closed']);
    const [only] = outputs(events);
    expect(only!.chunk.toString()).toBe('abc');
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3]);
  });

  it('publishes the held output when told the sends settled, and at once (after it) once nothing is in flight', async () => {
    const { proc, events, state, closed } = await start(['cat'], { pipeStdin: true });
    proc.write(Buffer.from('one'), null, false);
    await until(() => state.asked === 1);
    expect(events).toEqual([]);
    proc.flushCoalescedOutput();
    expect(outputs(events).map((e) => [e.seq, e.chunk.toString()])).toEqual([[1, 'one']]);
    proc.write(Buffer.from('two'), null, false);
    await until(() => state.asked === 2);
    proc.write(Buffer.from('three'), null, false);
    await until(() => state.asked === 3);
    expect(outputs(events)).toHaveLength(1);
    state.inFlight = false;
    proc.write(Buffer.from('four'), null, true);
    await closed;
    expect(outputs(events).map((e) => [e.seq, e.chunk.toString()])).toEqual([
      [1, 'one'],
      [2, 'twothree'],
      [3, 'four'],
    ]);
  });

  it('never holds more than COALESCED_OUTPUT_BYTES in one event, and loses nothing', async () => {
    const total = 3 * COALESCED_OUTPUT_BYTES + 12_345;
    const { events, closed } = await start(['head', '-c', String(total), '/dev/zero']);
    await closed;
    const chunks = outputs(events);
    expect(chunks.every((e) => e.chunk.length <= COALESCED_OUTPUT_BYTES)).toBe(true);
    expect(chunks.reduce((sum, e) => sum + e.chunk.length, 0)).toBe(total);
    expect(chunks.length).toBeGreaterThanOrEqual(4);
    expect(events.at(-2)!.type).toBe('exited');
  });

  it('publishes each chunk at once when no send is in flight', async () => {
    const { proc, events, state, closed } = await start(['cat'], { pipeStdin: true });
    state.inFlight = false;
    proc.write(Buffer.from('x'), null, false);
    await until(() => outputs(events).length === 1);
    proc.write(Buffer.from('y'), null, true);
    await closed;
    expect(outputs(events).map((e) => e.chunk.toString())).toEqual(['x', 'y']);
  });
});
