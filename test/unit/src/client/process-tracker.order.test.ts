/**
 * ProcessTracker and events pushed out of order: a server may push a process's `closed` before its
 * `exited` (the real codex exec-server does, now and then, under load); the missing event follows and
 * no `process/read` is due. An event that never comes (dropped) is read after GAP_GRACE_MS.
 */
import { describe, expect, it } from 'vitest';
import type { ProcessReadResult } from '../../../../src/protocol/process.js';
import { GAP_GRACE_MS, ProcessTracker } from '../../../../src/client/process-tracker.js';

function tracker(read: (afterSeq: number) => Promise<ProcessReadResult>): { tracker: ProcessTracker; reads: number[] } {
  const reads: number[] = [];
  const made = new ProcessTracker({
    read: (afterSeq) => {
      reads.push(afterSeq);
      return read(afterSeq);
    },
    onReadIssued: () => undefined,
    collectOutput: true,
    maxCollectedBytes: 1 << 20,
    eventBufferBytes: null,
    slowConsumer: 'pause',
    onBackpressure: () => undefined,
  });
  return { tracker: made, reads };
}

const noRead = async (): Promise<ProcessReadResult> => {
  throw new Error('no read expected');
};

describe('ProcessTracker: events pushed out of order', () => {
  it('completes from a `closed` pushed before its `exited` without a read', async () => {
    const { tracker: t, reads } = tracker(noRead);
    t.push({ type: 'output', processId: 'p', seq: 1, stream: 'stdout', chunk: Buffer.from('out\n') });
    t.push({ type: 'closed', processId: 'p', seq: 3 });
    await new Promise((resolve) => setTimeout(resolve, GAP_GRACE_MS / 5)); // the missing event comes a little later
    t.push({ type: 'exited', processId: 'p', seq: 2, exitCode: 4, sandboxDenied: false });
    const completion = await t.completion;
    expect({ stdout: completion.stdout.toString(), exitCode: completion.exitCode }).toEqual({ stdout: 'out\n', exitCode: 4 });
    await new Promise((resolve) => setTimeout(resolve, GAP_GRACE_MS * 2));
    expect(reads).toEqual([]);
  });

  it('reads a gap that stays open past GAP_GRACE_MS (a dropped event), once, from the last seq in order', async () => {
    const { tracker: t, reads } = tracker(async () => ({
      chunks: [{ seq: 2, stream: 'stdout', chunk: Buffer.from('two\n') }],
      nextSeq: 5,
      exited: true,
      exitCode: 0,
      closed: true,
      failure: null,
      sandboxDenied: false,
    }));
    const started = Date.now();
    t.push({ type: 'output', processId: 'p', seq: 1, stream: 'stdout', chunk: Buffer.from('one\n') });
    t.push({ type: 'exited', processId: 'p', seq: 3, exitCode: 0, sandboxDenied: false }); // seq 2 was dropped
    t.push({ type: 'closed', processId: 'p', seq: 4 });
    const completion = await t.completion;
    expect(Date.now() - started).toBeGreaterThanOrEqual(GAP_GRACE_MS - 5);
    expect(completion.stdout.toString()).toBe('one\ntwo\n');
    expect(reads).toEqual([1]);
  });
});
