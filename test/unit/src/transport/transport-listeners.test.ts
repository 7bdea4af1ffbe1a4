/**
 * The listener side every MessageTransport composes: messages to each listener in order, the close
 * delivered exactly once (to the listeners set by then at once, to a later one in a microtask, with
 * the close's Error), and a throwing listener's error left to the transport.
 */
import { describe, expect, it } from 'vitest';
import { TransportListeners } from '../../../../src/transport/transport-listeners.js';

describe('TransportListeners', () => {
  it('hands each message to every listener of its kind, in the order they were set', () => {
    const listeners = new TransportListeners();
    const seen: string[] = [];
    expect(listeners.hasMessageListener).toBe(false);
    expect(listeners.hasBinaryListener).toBe(false);
    listeners.onMessage((message) => seen.push(`a:${message}`));
    listeners.onMessage((message) => seen.push(`b:${message}`));
    listeners.onBinaryMessage((message) => seen.push(`bin:${Buffer.from(message).toString('hex')}`));
    expect(listeners.hasMessageListener).toBe(true);
    expect(listeners.hasBinaryListener).toBe(true);
    listeners.emitMessage('one');
    listeners.emitBinary(Uint8Array.of(1, 2));
    listeners.emitMessage('two');
    expect(seen).toEqual(['a:one', 'b:one', 'bin:0102', 'a:two', 'b:two']);
  });

  it('a listener that throws stops the delivery there and the throw reaches the caller', () => {
    const listeners = new TransportListeners();
    const seen: string[] = [];
    listeners.onMessage(() => {
      throw new Error('listener broke');
    });
    listeners.onMessage((message) => seen.push(message));
    expect(() => listeners.emitMessage('x')).toThrow('listener broke');
    expect(seen).toEqual([]);
  });

  it('closes once: the close listeners run at once with the error, a second close runs nothing', () => {
    const listeners = new TransportListeners();
    const closes: Array<Error | undefined> = [];
    listeners.onClose((error) => closes.push(error));
    listeners.onClose((error) => closes.push(error));
    const failure = new Error('socket failed');
    expect(listeners.closed).toBe(false);
    expect(listeners.close(failure)).toBe(true);
    expect(listeners.closed).toBe(true);
    expect(listeners.error).toBe(failure);
    expect(closes).toEqual([failure, failure]);
    expect(listeners.close()).toBe(false);
    expect(listeners.error).toBe(failure);
    expect(closes).toHaveLength(2);
  });

  it('a close listener set after the close runs in a microtask, with the close error (none after a clean close)', async () => {
    const failed = new TransportListeners();
    failed.close(new Error('gone'));
    const clean = new TransportListeners();
    clean.close();
    const late: Array<[string, Error | undefined]> = [];
    failed.onClose((error) => late.push(['failed', error]));
    clean.onClose((error) => late.push(['clean', error]));
    expect(late).toEqual([]);
    await Promise.resolve();
    expect(late.map(([which, error]) => [which, error?.message])).toEqual([
      ['failed', 'gone'],
      ['clean', undefined],
    ]);
  });
});
