import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CodexChannelError } from '../../../../src/codex-channel/codex-channel-error.js';
import { SeqReorderBuffer } from '../../../../src/codex-channel/seq-reorder-buffer.js';
import { CODEX_MISSING_FRAME_TIMEOUT_MS, CODEX_REORDER_BUFFER_BYTES, CODEX_REORDER_WINDOW_FRAMES } from '../../../../src/codex-channel/codex-channel-limits.js';

const p = (n: number) => Buffer.from([n]);

describe('SeqReorderBuffer', () => {
  let lost: CodexChannelError[];
  let buffer: SeqReorderBuffer;
  beforeEach(() => {
    vi.useFakeTimers();
    lost = [];
    buffer = new SeqReorderBuffer({ onFrameLost: (error) => lost.push(error) });
  });
  afterEach(() => {
    buffer.close();
    vi.useRealTimers();
  });

  it('delivers in seq order from 0, holding early frames and ignoring duplicates', () => {
    expect(buffer.push(1, p(1))).toEqual([]);
    expect(buffer.push(2, p(2))).toEqual([]);
    expect(buffer.push(2, p(9))).toEqual([]);
    expect(buffer.push(0, p(0))).toEqual([p(0), p(1), p(2)]);
    expect(buffer.push(1, p(1))).toEqual([]);
    expect(buffer.push(3, p(3))).toEqual([p(3)]);
  });

  it(`holds a frame ${CODEX_REORDER_WINDOW_FRAMES} ahead; one further ahead breaks the stream`, () => {
    expect(buffer.push(CODEX_REORDER_WINDOW_FRAMES, p(1))).toEqual([]);
    expect(() => buffer.push(CODEX_REORDER_WINDOW_FRAMES + 1, p(1))).toThrow(/beyond the reorder window/);
  });

  it('holds at most 1 MiB', () => {
    expect(buffer.push(1, Buffer.alloc(CODEX_REORDER_BUFFER_BYTES - 10))).toEqual([]);
    expect(() => buffer.push(2, Buffer.alloc(11))).toThrow(/reorder window/);
  });

  it('runs no timer while frames arrive in order', () => {
    for (let seq = 0; seq < 5; seq++) expect(buffer.push(seq, p(seq))).toEqual([p(seq)]);
    expect(buffer.waitingForMissingFrame).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a hole filled in time: nothing lost, the one timer stopped', () => {
    buffer.push(1, p(1));
    buffer.push(2, p(2));
    buffer.push(3, p(3));
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(CODEX_MISSING_FRAME_TIMEOUT_MS - 1);
    expect(buffer.push(0, p(0))).toEqual([p(0), p(1), p(2), p(3)]);
    expect(buffer.waitingForMissingFrame).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(10 * CODEX_MISSING_FRAME_TIMEOUT_MS);
    expect(lost).toEqual([]);
  });

  it(`a hole open ${CODEX_MISSING_FRAME_TIMEOUT_MS} ms: the frame is lost (once), the buffer then delivers nothing`, () => {
    expect(buffer.push(0, p(0))).toEqual([p(0)]);
    buffer.push(2, p(2));
    buffer.push(3, p(3));
    vi.advanceTimersByTime(CODEX_MISSING_FRAME_TIMEOUT_MS - 1);
    expect(lost).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(lost).toHaveLength(1);
    expect(lost[0]).toBeInstanceOf(CodexChannelError);
    expect(lost[0]!.failure).toBe('frame-lost');
    expect(lost[0]!.message).toBe(`data frame 1 never arrived: 2 later frames waited for it ${CODEX_MISSING_FRAME_TIMEOUT_MS} ms`);
    expect(vi.getTimerCount()).toBe(0);
    expect(buffer.push(1, p(1))).toEqual([]);
    vi.advanceTimersByTime(10 * CODEX_MISSING_FRAME_TIMEOUT_MS);
    expect(lost).toHaveLength(1);
  });

  it('moving on in order past one hole into another measures the new hole from then', () => {
    buffer.push(1, p(1));
    buffer.push(3, p(3));
    vi.advanceTimersByTime(CODEX_MISSING_FRAME_TIMEOUT_MS - 100);
    // 0 fills the first hole; 3 still waits behind 2.
    expect(buffer.push(0, p(0))).toEqual([p(0), p(1)]);
    expect(buffer.waitingForMissingFrame).toBe(true);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(CODEX_MISSING_FRAME_TIMEOUT_MS - 1);
    expect(lost).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(lost.map((error) => error.message)).toEqual([`data frame 2 never arrived: 1 later frame waited for it ${CODEX_MISSING_FRAME_TIMEOUT_MS} ms`]);
  });

  it('close stops the timer: a hole open at close is never reported', () => {
    buffer.push(1, p(1));
    expect(vi.getTimerCount()).toBe(1);
    buffer.close();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(10 * CODEX_MISSING_FRAME_TIMEOUT_MS);
    expect(lost).toEqual([]);
    expect(buffer.push(0, p(0))).toEqual([]);
  });

  it('takes its bound from the options', () => {
    const quick = new SeqReorderBuffer({ onFrameLost: (error) => lost.push(error), missingFrameTimeoutMs: 50 });
    quick.push(1, p(1));
    vi.advanceTimersByTime(50);
    expect(lost.map((error) => error.failure)).toEqual(['frame-lost']);
  });
});
