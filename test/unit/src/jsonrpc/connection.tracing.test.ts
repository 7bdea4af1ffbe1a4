import { describe, expect, it } from 'vitest';
import { JsonRpcConnection, type ResponseOutcome, type RequestContext } from '../../../../src/jsonrpc/connection.js';
import { RpcError } from '../../../../src/protocol/error-codes.js';
import type { MessageTransport } from '../../../../src/transport/message-transport.js';

/** A MessageTransport whose `send` settles only when the test says so (a full transport buffer). */
class HeldTransport implements MessageTransport {
  readonly kind = 'memory' as const;
  closed = false;
  readonly sent: Array<{ text: string; accept: () => void; refuse: (error: Error) => void }> = [];
  private messageListener: (message: string) => void = () => undefined;
  private readonly closeListeners: Array<(error?: Error) => void> = [];

  send(message: string): Promise<void> {
    if (this.closed) return Promise.reject(new Error('closed'));
    return new Promise((resolve, reject) => this.sent.push({ text: message, accept: resolve, refuse: reject }));
  }
  onMessage(listener: (message: string) => void): void {
    this.messageListener = listener;
  }
  onClose(listener: (error?: Error) => void): void {
    this.closeListeners.push(listener);
  }
  pauseReceiving(): void {
    throw new Error('receive pausing is not used by the tracing tests');
  }
  resumeReceiving(): void {
    throw new Error('receive pausing is not used by the tracing tests');
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const listener of this.closeListeners) listener();
  }
  deliver(message: object): void {
    this.messageListener(JSON.stringify(message));
  }
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('JsonRpcConnection: response-queued hook', () => {
  it('reports each handled request once, only after the transport accepted its response', async () => {
    const transport = new HeldTransport();
    const rpc = new JsonRpcConnection(transport);
    const heard: Array<{ context: RequestContext; outcome: ResponseOutcome }> = [];
    rpc.onResponse((context, outcome) => heard.push({ context, outcome }));
    rpc.setRequestHandler((method) => {
      if (method === 'fails') throw new RpcError(-32004, 'no such thing');
      return { ok: true };
    });
    const carrier = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' };
    transport.deliver({ id: 1, method: 'works', params: {}, trace: carrier });
    transport.deliver({ id: 2, method: 'fails', params: {} });
    await tick();
    // Handled concurrently: responses go out in whichever order the handlers finish.
    const sentById = new Map(transport.sent.map((s) => [(JSON.parse(s.text) as { id: number }).id, s]));
    expect(JSON.parse(sentById.get(1)!.text)).toEqual({ id: 1, result: { ok: true } });
    expect(JSON.parse(sentById.get(2)!.text)).toEqual({ id: 2, error: { code: -32004, message: 'no such thing' } });
    expect(heard).toEqual([]); // handed over, not yet accepted
    sentById.get(2)!.accept();
    await tick();
    expect(heard.map((h) => [h.context.id, h.outcome])).toEqual([[2, { queued: true, errorCode: -32004 }]]);
    sentById.get(1)!.accept();
    await tick();
    expect(heard.map((h) => [h.context.id, h.outcome])).toEqual([
      [2, { queued: true, errorCode: -32004 }],
      [1, { queued: true }],
    ]);
    expect(heard[1]!.context.trace).toEqual(carrier);
  });

  it('reports `queued: false` when the connection closed before the response could be queued', async () => {
    const transport = new HeldTransport();
    const rpc = new JsonRpcConnection(transport);
    const heard: ResponseOutcome[] = [];
    rpc.onResponse((_context, outcome) => heard.push(outcome));
    let release: () => void = () => undefined;
    rpc.setRequestHandler(() => new Promise((resolve) => (release = () => resolve({}))));
    transport.deliver({ id: 7, method: 'slow' });
    await tick();
    transport.close();
    release();
    await tick();
    expect(heard).toEqual([{ queued: false }]);
  });
});

describe('JsonRpcConnection: trace provider', () => {
  it('puts the provider\'s carrier on each request and ends its trace when the call settles', async () => {
    const transport = new HeldTransport();
    const ended: Array<[string, string | undefined]> = [];
    const rpc = new JsonRpcConnection(transport, {
      traceProvider: (method) => ({
        trace: { traceparent: `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01` },
        end: (error) => ended.push([method, error?.message]),
      }),
    });
    const ok = rpc.request('a/ok', {});
    const failed = rpc.request('a/fails', {});
    const explicit = rpc.request('a/explicit', {}, { trace: { traceparent: 'caller-given' } });
    await tick();
    const sent = transport.sent.map((s) => JSON.parse(s.text) as { id: number; method: string; trace?: { traceparent: string } });
    expect(sent[0]!.trace?.traceparent).toBe(`00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`);
    expect(sent[2]!.trace?.traceparent).toBe('caller-given');
    transport.deliver({ id: sent[0]!.id, result: {} });
    transport.deliver({ id: sent[1]!.id, error: { code: -32601, message: 'nope' } });
    transport.deliver({ id: sent[2]!.id, result: {} });
    await ok;
    await expect(failed).rejects.toThrow('nope');
    await explicit;
    // The caller's own carrier bypasses the provider.
    expect(ended).toEqual([
      ['a/ok', undefined],
      ['a/fails', 'nope'],
    ]);
  });
});
