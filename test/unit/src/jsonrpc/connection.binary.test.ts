import { describe, expect, it } from 'vitest';
import { BinaryResponse } from '../../../../src/jsonrpc/binary-response.js';
import { JsonRpcConnection } from '../../../../src/jsonrpc/connection.js';
import { RpcError } from '../../../../src/protocol/error-codes.js';
import { RecordingTransport } from '../../../support/recording-transport.js';

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('JsonRpcConnection: requests and results as binary messages', () => {
  it('requestBinary sends the encoded message and resolves with the JSON response on its id', async () => {
    const transport = new RecordingTransport(true);
    const rpc = new JsonRpcConnection(transport);
    const call = rpc.requestBinary('fs/writeBlock', (id) => Buffer.from([0xb1, 2, id]), () => ({ json: true }));
    await tick();
    expect(transport.binary).toEqual([Buffer.from([0xb1, 2, 1])]);
    expect(transport.text).toEqual([]);
    transport.deliver({ id: 1, result: {} });
    await expect(call).resolves.toEqual({});
  });

  it('requestBinary falls back to JSON where the message cannot carry it or the transport has no binary messages', async () => {
    const binary = new RecordingTransport(true);
    const rpc = new JsonRpcConnection(binary);
    void rpc.requestBinary('fs/writeBlock', () => undefined, () => ({ chunk: 'aGk=' }));
    const plain = new RecordingTransport(false);
    void new JsonRpcConnection(plain).requestBinary('fs/writeBlock', () => Buffer.from([0xb1]), () => ({ chunk: 'aGk=' }));
    await tick();
    expect(binary.binary).toEqual([]);
    expect(binary.text).toEqual([{ id: 1, method: 'fs/writeBlock', params: { chunk: 'aGk=' } }]);
    expect(plain.text).toEqual([{ id: 1, method: 'fs/writeBlock', params: { chunk: 'aGk=' } }]);
  });

  it('requestBinary refuses a message over the cap (the call fails, nothing is sent)', async () => {
    const transport = new RecordingTransport(true);
    const rpc = new JsonRpcConnection(transport, { maxMessageBytes: 8 });
    await expect(rpc.requestBinary('fs/writeBlock', () => Buffer.alloc(9, 0xb1), () => ({}))).rejects.toThrow('message exceeds 8 bytes');
    expect(transport.binary).toEqual([]);
  });

  it('resolveBinaryResult settles a pending call of that method, fails one of another method or with an Error, ignores an unknown id', async () => {
    const rpc = new JsonRpcConnection(new RecordingTransport(true));
    const read = rpc.request('fs/readBlock', {});
    const other = rpc.request('fs/getMetadata', {});
    const failed = rpc.request('fs/readBlock', {});
    expect(rpc.resolveBinaryResult(1, 'fs/readBlock', { chunk: Buffer.from('x'), eof: true })).toBe(true);
    await expect(read).resolves.toEqual({ chunk: Buffer.from('x'), eof: true });
    expect(rpc.resolveBinaryResult(2, 'fs/readBlock', { chunk: Buffer.alloc(0), eof: true })).toBe(true);
    await expect(other).rejects.toThrow('invalid fs/getMetadata result: a binary fs/readBlock result');
    expect(rpc.resolveBinaryResult(3, 'fs/readBlock', new RpcError(-32603, 'malformed'))).toBe(true);
    await expect(failed).rejects.toThrow('malformed');
    expect(rpc.resolveBinaryResult(3, 'fs/readBlock', {})).toBe(false);
    expect(rpc.resolveBinaryResult(99, 'fs/readBlock', {})).toBe(false);
  });

  it('a handler returning a BinaryResponse answers a numeric id with a binary message and a string id (or a text-only transport) with its JSON', async () => {
    for (const binary of [true, false]) {
      const transport = new RecordingTransport(binary);
      const rpc = new JsonRpcConnection(transport);
      rpc.setRequestHandler(() => new BinaryResponse((id) => Buffer.from([0xb1, 3, id]), () => ({ chunk: 'eA==', eof: true })));
      transport.deliver({ id: 7, method: 'fs/readBlock', params: {} });
      transport.deliver({ id: 'seven', method: 'fs/readBlock', params: {} });
      await tick();
      await tick();
      expect(transport.binary).toEqual(binary ? [Buffer.from([0xb1, 3, 7])] : []);
      expect(transport.text).toEqual([
        ...(binary ? [] : [{ id: 7, result: { chunk: 'eA==', eof: true } }]),
        { id: 'seven', result: { chunk: 'eA==', eof: true } },
      ]);
    }
  });

  it('a BinaryResponse over the message cap is answered with an error, and its slot is given back', async () => {
    const transport = new RecordingTransport(true);
    const rpc = new JsonRpcConnection(transport, { maxMessageBytes: 128, maxConcurrentRequests: 1 });
    rpc.setRequestHandler((method) => (method === 'big' ? new BinaryResponse(() => Buffer.alloc(129, 0xb1), () => ({})) : { ok: true }));
    transport.deliver({ id: 1, method: 'big', params: {} });
    transport.deliver({ id: 2, method: 'small', params: {} });
    for (let i = 0; i < 5; i++) await tick();
    expect(transport.binary).toEqual([]);
    expect(transport.text).toEqual([
      { id: 1, error: { code: -32603, message: 'response too large: message exceeds 128 bytes' } },
      { id: 2, result: { ok: true } },
    ]);
  });

  it('receiveDecodedRequest admits a request like a JSON one; rejectRequest answers an id without handling it', async () => {
    const transport = new RecordingTransport(true);
    const rpc = new JsonRpcConnection(transport);
    const seen: unknown[] = [];
    rpc.setRequestHandler((method, params) => {
      seen.push([method, params]);
      return {};
    });
    const rejected: string[] = [];
    rpc.onRejectedMessage((reason) => rejected.push(reason));
    rpc.receiveDecodedRequest({ id: 5, method: 'fs/writeBlock', params: { chunk: Buffer.from('hi') } });
    rpc.rejectRequest(6, { code: -32600, message: 'invalid request: malformed binary message: truncated' });
    await tick();
    await tick();
    expect(seen).toEqual([['fs/writeBlock', { chunk: Buffer.from('hi') }]]);
    expect(transport.text).toEqual([
      { id: 6, error: { code: -32600, message: 'invalid request: malformed binary message: truncated' } },
      { id: 5, result: {} },
    ]);
    expect(rejected).toEqual(['malformed']);
  });
});
