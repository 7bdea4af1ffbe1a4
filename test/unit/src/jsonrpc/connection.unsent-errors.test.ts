import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_UNSENT_ERRORS, JsonRpcConnection } from '../../../../src/jsonrpc/connection.js';
import type { MessageTransport } from '../../../../src/transport/message-transport.js';

/** A transport whose peer does not read: every send waits until `drain()`. Pauses are counted. */
class StalledTransport implements MessageTransport {
  readonly kind = 'memory' as const;
  readonly closed = false;
  sends = 0;
  paused = 0;
  private readonly waiting: Array<() => void> = [];
  private messageListener: (message: string) => void = () => undefined;
  send(): Promise<void> {
    this.sends++;
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  drain(): void {
    for (const resolve of this.waiting.splice(0)) resolve();
  }
  onMessage(listener: (message: string) => void): void {
    this.messageListener = listener;
  }
  onClose(): void {}
  pauseReceiving(): void {
    this.paused++;
  }
  resumeReceiving(): void {
    this.paused--;
  }
  close(): void {}
  deliver(raw: string): void {
    this.messageListener(raw);
  }
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('JsonRpcConnection: error answers a peer does not read are bounded', () => {
  it('stops reading the peer once the unsent error answers reach the bound (malformed messages, unknown methods, refusals past the queue), and reads again once they are out', async () => {
    const transport = new StalledTransport();
    const rpc = new JsonRpcConnection(transport, { maxUnsentErrors: 8, maxConcurrentRequests: 1, maxQueuedRequests: 0 });
    let release!: () => void;
    rpc.setRequestHandler(() => new Promise((resolve) => (release = () => resolve({}))));
    transport.deliver(JSON.stringify({ id: 0, method: 'slow', params: {} })); // holds the one slot
    for (let i = 1; i < 8; i++) transport.deliver(i % 2 ? 'not json' : JSON.stringify({ id: i, method: 'refused', params: {} }));
    await tick();
    expect({ sends: transport.sends, paused: transport.paused }).toEqual({ sends: 7, paused: 0 });
    transport.deliver('not json');
    await tick();
    expect({ sends: transport.sends, paused: transport.paused }).toEqual({ sends: 8, paused: 1 });
    transport.drain();
    await tick();
    expect(transport.paused).toBe(0);
    release();
    await tick();
    expect(rpc.closed).toBe(false);
  });

  it('a peer that reads its answers is never paused, however many errors it causes', async () => {
    const transport = new StalledTransport();
    new JsonRpcConnection(transport, { maxUnsentErrors: 8 });
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 7; i++) transport.deliver('not json');
      await tick();
      expect(transport.paused).toBe(0);
      transport.drain();
      await tick();
    }
    expect(transport.sends).toBe(140);
  });

  it('pauses are counted: a caller\'s pause holds across the connection\'s own resume', async () => {
    const transport = new StalledTransport();
    const rpc = new JsonRpcConnection(transport, { maxUnsentErrors: 2 });
    rpc.pauseReceiving(); // a caller (ExecClient: an event buffer is full)
    transport.deliver('not json');
    transport.deliver('not json');
    await tick();
    expect(transport.paused).toBe(1); // one transport pause for both reasons
    transport.drain();
    await tick();
    expect(transport.paused).toBe(1); // the caller's still holds
    rpc.resumeReceiving();
    expect(transport.paused).toBe(0);
    rpc.resumeReceiving(); // an extra resume is ignored
    expect(transport.paused).toBe(0);
  });

  it('the default bound is the documented one', () => {
    expect(DEFAULT_MAX_UNSENT_ERRORS).toBe(256);
  });
});
