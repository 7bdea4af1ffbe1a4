import { describe, expect, it } from 'vitest';
import { SeqReorderBuffer } from '../../../../src/codex-channel/seq-reorder-buffer.js';
import { CODEX_REORDER_BUFFER_BYTES, CODEX_REORDER_WINDOW_FRAMES } from '../../../../src/codex-channel/codex-channel-limits.js';

const p = (n: number) => Buffer.from([n]);

describe('SeqReorderBuffer', () => {
  it('delivers in seq order from 0, holding early frames and ignoring duplicates', () => {
    const buffer = new SeqReorderBuffer();
    expect(buffer.push(1, p(1))).toEqual([]);
    expect(buffer.push(2, p(2))).toEqual([]);
    expect(buffer.push(2, p(9))).toEqual([]);
    expect(buffer.push(0, p(0))).toEqual([p(0), p(1), p(2)]);
    expect(buffer.push(1, p(1))).toEqual([]);
    expect(buffer.push(3, p(3))).toEqual([p(3)]);
  });

  it(`holds a frame ${CODEX_REORDER_WINDOW_FRAMES} ahead; one further ahead breaks the stream`, () => {
    const buffer = new SeqReorderBuffer();
    expect(buffer.push(CODEX_REORDER_WINDOW_FRAMES, p(1))).toEqual([]);
    expect(() => buffer.push(CODEX_REORDER_WINDOW_FRAMES + 1, p(1))).toThrow(/beyond the reorder window/);
  });

  it('holds at most 1 MiB', () => {
    const buffer = new SeqReorderBuffer();
    expect(buffer.push(1, Buffer.alloc(CODEX_REORDER_BUFFER_BYTES - 10))).toEqual([]);
    expect(() => buffer.push(2, Buffer.alloc(11))).toThrow(/reorder window/);
  });
});
