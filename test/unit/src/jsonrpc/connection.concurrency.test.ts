import { describe, expect, it } from 'vitest';
import { JsonRpcConnection } from '../../../../src/jsonrpc/connection.js';
import { RecordingTransport } from '../../../support/recording-transport.js';

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('JsonRpcConnection: maxConcurrentRequests and maxQueuedRequests', () => {
  it('runs at most N handlers at once, starts the queued ones in arrival order, refuses past the queue bound', async () => {
    const transport = new RecordingTransport();
    const rpc = new JsonRpcConnection(transport, { maxConcurrentRequests: 2, maxQueuedRequests: 2 });
    const started: number[] = [];
    const finish = new Map<number, () => void>();
    rpc.setRequestHandler(async (_method, params) => {
      const n = (params as { n: number }).n;
      started.push(n);
      await new Promise<void>((resolve) => finish.set(n, resolve));
      return { n };
    });
    for (let n = 1; n <= 5; n++) transport.deliver({ id: n, method: 'work', params: { n } });
    await tick();
    expect(started).toEqual([1, 2]);
    // The fifth found two running and two queued.
    expect(transport.text).toEqual([
      { id: 5, error: { code: -32600, message: 'too many pending requests (limit 2 in progress and 2 queued per connection)' } },
    ]);
    finish.get(2)!();
    await tick();
    expect(started).toEqual([1, 2, 3]);
    finish.get(1)!();
    await tick();
    expect(started).toEqual([1, 2, 3, 4]);
    finish.get(3)!();
    finish.get(4)!();
    await tick();
    expect(transport.text.filter((m) => m.result).map((m) => m.id)).toEqual([2, 1, 3, 4]);
    // With the slots free again, a new request runs at once.
    transport.deliver({ id: 6, method: 'work', params: { n: 6 } });
    await tick();
    expect(started).toEqual([1, 2, 3, 4, 6]);
    finish.get(6)!();
  });
});
