import { describe, expect, it } from 'vitest';
import { FifoQueue } from '../../../../src/queue/fifo-queue.js';

describe('FifoQueue', () => {
  it('keeps order and counts bytes through pushes, shifts and compactions', () => {
    const queue = new FifoQueue<string>((item) => item.length);
    let nextIn = 0;
    let nextOut = 0;
    let bytes = 0;
    // Interleaved so the head passes 1024 many times with items still queued behind it.
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 300; i++) {
        const item = String(nextIn++);
        queue.push(item);
        bytes += item.length;
      }
      for (let i = 0; i < 200; i++) {
        const item = queue.shift();
        expect(item).toBe(String(nextOut++));
        bytes -= item!.length;
      }
      expect(queue.length).toBe(nextIn - nextOut);
      expect(queue.byteLength).toBe(bytes);
      expect(queue.peek()).toBe(String(nextOut));
      expect(queue.at(queue.length - 1)).toBe(String(nextIn - 1));
      expect(queue.at(queue.length)).toBeUndefined();
    }
    const rest = queue.drain();
    expect(rest).toEqual(Array.from({ length: nextIn - nextOut }, (_, i) => String(nextOut + i)));
    expect(queue.length).toBe(0);
    expect(queue.byteLength).toBe(0);
    expect(queue.shift()).toBeUndefined();
  });

  it('clear drops everything', () => {
    const queue = new FifoQueue<Uint8Array>((item) => item.byteLength);
    queue.push(new Uint8Array(3));
    queue.push(new Uint8Array(5));
    expect(queue.byteLength).toBe(8);
    queue.clear();
    expect(queue.length).toBe(0);
    expect(queue.byteLength).toBe(0);
    expect(queue.peek()).toBeUndefined();
  });
});
