import { afterEach, describe, expect, it } from 'vitest';
import { once } from 'node:events';
import type { AddressInfo, Socket } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { corkForThisTurn } from '../../../../src/transport/burst-cork.js';

/** A real loopback WebSocket pair; `server` is the accepted side. */
async function socketPair(): Promise<{ client: WebSocket; server: WebSocket; close(): Promise<void> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  const accepted = once(wss, 'connection');
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
  await once(client, 'open');
  const [server] = (await accepted) as [WebSocket];
  return {
    client,
    server,
    close: async () => {
      client.terminate();
      server.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

const tcp = (ws: WebSocket) => (ws as unknown as { _socket: Socket })._socket;

/** Counts the writes that reach the TCP socket (`_write` of one buffer, `_writev` of several), chunks per write. */
function countWrites(socket: Socket): number[] {
  const writes: number[] = [];
  const writev = socket._writev!.bind(socket);
  const write = socket._write.bind(socket);
  socket._writev = (chunks, cb) => {
    writes.push(chunks.length);
    writev(chunks, cb);
  };
  socket._write = (chunk, encoding, cb) => {
    writes.push(1);
    write(chunk, encoding, cb);
  };
  return writes;
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('corkForThisTurn', () => {
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await close?.();
    close = undefined;
  });

  it('holds every frame sent in this turn until the turn ends, then sends them in one write, in order', async () => {
    const pair = await socketPair();
    close = pair.close;
    const socket = tcp(pair.server);
    const writes = countWrites(socket);
    const received: string[] = [];
    pair.client.on('message', (data) => received.push(String(data)));

    for (let i = 0; i < 5; i++) {
      corkForThisTurn(pair.server);
      pair.server.send(`frame ${i}`);
      // ws's own cork/uncork around each frame nests inside ours.
      expect(socket.writableCorked).toBe(1);
    }
    expect(writes).toEqual([]);
    await new Promise((resolve) => process.nextTick(resolve));
    expect(socket.writableCorked).toBe(0);
    expect(writes).toEqual([10]); // five frames, a header and a payload each, in one writev
    await expect.poll(() => received.length).toBe(5);
    expect(received).toEqual(['frame 0', 'frame 1', 'frame 2', 'frame 3', 'frame 4']);
  });

  it('without it each frame is its own write (what the cork saves)', async () => {
    const pair = await socketPair();
    close = pair.close;
    const writes = countWrites(tcp(pair.server));
    for (let i = 0; i < 5; i++) pair.server.send(`frame ${i}`);
    await nextTurn();
    expect(writes).toEqual([2, 2, 2, 2, 2]);
  });

  it('corks a socket once per turn, and again in the next turn', async () => {
    const pair = await socketPair();
    close = pair.close;
    const socket = tcp(pair.client);
    corkForThisTurn(pair.client);
    corkForThisTurn(pair.client);
    expect(socket.writableCorked).toBe(1);
    await nextTurn();
    expect(socket.writableCorked).toBe(0);
    corkForThisTurn(pair.client);
    expect(socket.writableCorked).toBe(1);
    await nextTurn();
    expect(socket.writableCorked).toBe(0);
  });

  it('copes with a socket that closes within the turn, and ignores stand-ins without a TCP socket', async () => {
    const pair = await socketPair();
    close = pair.close;
    corkForThisTurn(pair.server);
    pair.server.send('lost');
    pair.server.terminate();
    await nextTurn();
    expect(tcp(pair.server).destroyed).toBe(true);
    expect(() => corkForThisTurn({})).not.toThrow();
    expect(() => corkForThisTurn({ _socket: { cork: 1 } })).not.toThrow();
  });
});
