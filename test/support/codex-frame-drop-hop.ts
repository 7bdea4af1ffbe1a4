/**
 * An in-process hop between codex clients and a relay that loses exactly one Data frame of a
 * codex stream while the link stays up (as a relay or a fleet hop that dropped it would): plain
 * HTTP (the registry's `connect`) is passed on with its Host header, so the rendezvous URL the
 * relay answers points back at the hop; each rendezvous WebSocket is relayed message by message,
 * its codex relay frames parsed with `src/codex-relay-frame/`, and the Nth Data frame of one
 * direction (counted from when the drop was asked for, over every socket) is not passed on.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { decodeCodexRelayFrame, MAX_CODEX_RELAY_FRAME_BYTES } from '../../src/codex-relay-frame/codex-relay-frame.js';

/** `to-client`: executor → client (the relay's frames down to the client); `to-executor`: client → executor. */
export type CodexFrameDirection = 'to-client' | 'to-executor';

/** The Data frame the hop lost. */
export interface DroppedDataFrame {
  streamId: string;
  seq: number;
}

export interface CodexFrameDropHop {
  /** `ws://127.0.0.1:PORT`: give it to a client as its relay. */
  readonly url: string;
  /** Rendezvous sockets opened through the hop so far. */
  readonly sockets: number;
  /**
   * Loses the `nth` (from 1) Data frame going `direction` from now on; resolves with it once lost.
   * One drop at a time; every other frame is passed on.
   */
  dropDataFrame(direction: CodexFrameDirection, nth: number): Promise<DroppedDataFrame>;
  close(): Promise<void>;
}

interface PendingDrop {
  direction: CodexFrameDirection;
  remaining: number;
  resolve(frame: DroppedDataFrame): void;
}

function toBuffer(data: RawData): Buffer {
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
}

/** A close code that may be sent again (1005/1006/1015 are only ever reported). */
function sendableCloseCode(code: number): number | undefined {
  return code === 1000 || (code >= 3000 && code <= 4999) || (code >= 1001 && code <= 1014 && code !== 1005 && code !== 1006) ? code : undefined;
}

/** Starts the hop in front of the relay listening on 127.0.0.1:`relayPort`. */
export async function startCodexFrameDropHop(relayPort: number): Promise<CodexFrameDropHop> {
  let drop: PendingDrop | undefined;
  let sockets = 0;
  /** Whether this frame is the one to lose. */
  const loses = (direction: CodexFrameDirection, data: Buffer): boolean => {
    if (!drop || drop.direction !== direction) return false;
    const decoded = decodeCodexRelayFrame(data);
    if (!decoded.ok || decoded.frame.body.type !== 'data') return false;
    if (--drop.remaining > 0) return false;
    const { resolve } = drop;
    drop = undefined;
    resolve({ streamId: decoded.frame.streamId, seq: decoded.frame.body.seq });
    return true;
  };

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_CODEX_RELAY_FRAME_BYTES, perMessageDeflate: false });
  const server = http.createServer((req, res) => {
    const upstream = http.request({ host: '127.0.0.1', port: relayPort, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('upgrade', (req, socket, head) => {
    // The relay's answer to the upgrade first, so that a refusal reaches the client as it is.
    const upstream = new WebSocket(`ws://127.0.0.1:${relayPort}${req.url ?? '/'}`, { headers: { host: req.headers.host ?? '' }, maxPayload: MAX_CODEX_RELAY_FRAME_BYTES, perMessageDeflate: false });
    const early: Array<{ data: Buffer; binary: boolean }> = [];
    let client: WebSocket | undefined;
    upstream.on('message', (raw, binary) => {
      const data = toBuffer(raw);
      if (binary && loses('to-client', data)) return;
      if (client) client.send(data, { binary });
      else early.push({ data, binary });
    });
    upstream.on('unexpected-response', (_request, response) => {
      socket.end(`HTTP/1.1 ${response.statusCode ?? 502} ${response.statusMessage ?? ''}\r\n${Object.entries(response.headers).map(([k, v]) => `${k}: ${String(v)}\r\n`).join('')}\r\n`);
      upstream.terminate();
    });
    upstream.on('error', () => {
      if (!client) socket.destroy();
    });
    upstream.on('open', () => {
      wss.handleUpgrade(req, socket, head, (accepted) => {
        sockets++;
        client = accepted;
        for (const message of early.splice(0)) accepted.send(message.data, { binary: message.binary });
        accepted.on('message', (raw, binary) => {
          const data = toBuffer(raw);
          if (binary && loses('to-executor', data)) return;
          upstream.send(data, { binary });
        });
        accepted.on('close', (code) => upstream.close(sendableCloseCode(code)));
        accepted.on('error', () => upstream.terminate());
        upstream.on('close', (code) => accepted.close(sendableCloseCode(code)));
        upstream.on('error', () => accepted.terminate());
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}`,
    get sockets() {
      return sockets;
    },
    dropDataFrame(direction, nth) {
      if (drop) throw new Error('a drop is already pending');
      return new Promise((resolve) => (drop = { direction, remaining: nth, resolve }));
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of wss.clients) socket.terminate();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
