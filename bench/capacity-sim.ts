/**
 * The executor side of the relay capacity benchmark (bench/capacity.bench.ts), run as its own
 * process (`child_process.fork`, commands over IPC): N simulated executors, each a WebSocket
 * registered with the relay under environment `cap-<i>`, that accept every stream (`open` back, as
 * an agent does once its handshake completes) and echo every `data` frame unchanged. Also a plain
 * WebSocket echo server (no relay) for the latency baseline. It speaks relay frames only: no Noise
 * and no reliable stream, so the load measures the relay's routing, not the endpoints.
 */
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { EXECUTOR_CONNECT_PATH } from '../src/relay-control/relay-endpoints.js';
import { executorProofHeaders } from '../src/relay-control/executor-proof.js';
import { generateIdentity } from '../src/noise/identity.js';
import { encodeRelayFrame, peekHeader } from '../src/relay-frame/relay-frame.js';
import { NO_ACK } from '../src/relay-frame/limits.js';

type Command = { type: 'executors'; relayUrl: string; token: string; count: number } | { type: 'echo-server' } | { type: 'stop' };

const sockets: WebSocket[] = [];
let echoServer: WebSocketServer | undefined;

/** Zero mask: the frames are relay frames of a benchmark, and masking costs the simulator CPU. */
const zeroMask = (mask: Uint8Array): void => void mask.fill(0);

async function register(relayUrl: string, token: string, environmentId: string): Promise<void> {
  // Each simulated executor proves an identity of its own, as an agent does (the relay binds the environment to it).
  const proof = await executorProofHeaders(await generateIdentity(), environmentId, relayUrl);
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${relayUrl}${EXECUTOR_CONNECT_PATH}?environmentId=${environmentId}`, {
      headers: { ...proof, Authorization: `Bearer ${token}` },
      perMessageDeflate: false,
      generateMask: zeroMask,
    });
    const timer = setTimeout(() => reject(new Error(`executor ${environmentId} not registered in time`)), 30_000);
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('message', (data: Buffer, isBinary) => {
      if (!isBinary) {
        if (data.toString().includes('"registered"')) {
          clearTimeout(timer);
          sockets.push(socket);
          resolve();
        }
        return;
      }
      const peeked = peekHeader(data);
      if (!peeked.ok) return;
      if (peeked.header.type === 'open') {
        socket.send(encodeRelayFrame({ streamId: peeked.header.streamId, ack: NO_ACK, ackBits: 0, body: { type: 'open', payload: new Uint8Array(0) } }));
      } else if (peeked.header.type === 'data') {
        socket.send(data);
      }
    });
  });
}

async function registerAll(relayUrl: string, token: string, count: number): Promise<void> {
  const concurrency = 64;
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        await register(relayUrl, token, `cap-${i}`);
      }
    }),
  );
}

function startEchoServer(): Promise<string> {
  return new Promise((resolve) => {
    const server: WebSocketServer = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false }, (): void =>
      resolve(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`),
    );
    server.on('connection', (socket: WebSocket) => socket.on('message', (data: Buffer) => socket.send(data)));
    echoServer = server;
  });
}

process.on('message', (message: Command) => {
  void (async () => {
    try {
      switch (message.type) {
        case 'executors':
          await registerAll(message.relayUrl, message.token, message.count);
          process.send!({ ok: true, registered: sockets.length });
          break;
        case 'echo-server':
          process.send!({ ok: true, url: await startEchoServer() });
          break;
        case 'stop':
          for (const socket of sockets) socket.terminate();
          echoServer?.close();
          process.send!({ ok: true });
          setTimeout(() => process.exit(0), 50);
          break;
      }
    } catch (error) {
      process.send!({ ok: false, error: error instanceof Error ? error.message : String(error) });
    }
  })();
});
process.on('disconnect', () => process.exit(0));
