import { WebSocket, WebSocketServer, type RawData } from 'ws';

/** One WebSocket message seen by the proxy. */
export interface CapturedMessage {
  /** `upstream`: client → server; `downstream`: server → client. */
  direction: 'upstream' | 'downstream';
  binary: boolean;
  data: Buffer;
}

export interface WebSocketCaptureProxy {
  /** `ws://127.0.0.1:PORT`: connect here instead of the target. */
  readonly url: string;
  /** Every message of every connection so far, in the order the proxy saw them. */
  readonly messages: CapturedMessage[];
  /** The text messages of one direction, parsed as JSON. */
  json(direction: CapturedMessage['direction']): Array<Record<string, any>>;
  close(): Promise<void>;
}

export interface CaptureProxyOptions {
  /**
   * Rewrites each text message from the server before the client gets it (what is captured is what
   * the client got): e.g. to take a capability out of an `initialize` result.
   */
  rewriteDownstreamText?: (text: string) => string;
}

function toBuffer(data: RawData): Buffer {
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
}

/**
 * A loopback WebSocket proxy in front of `targetUrl` that records every message both ways with its
 * frame type (text or binary), after the WebSocket layer (unmasked), to prove what a peer was sent.
 */
export async function startWebSocketCaptureProxy(targetUrl: string, options: CaptureProxyOptions = {}): Promise<WebSocketCaptureProxy> {
  const messages: CapturedMessage[] = [];
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 128 * 1024 * 1024, perMessageDeflate: false });
  server.on('connection', (client) => {
    const upstream = new WebSocket(targetUrl, { maxPayload: 128 * 1024 * 1024, perMessageDeflate: false });
    const early: Array<{ data: Buffer; binary: boolean }> = [];
    client.on('message', (raw, binary) => {
      const data = toBuffer(raw);
      messages.push({ direction: 'upstream', binary, data });
      if (upstream.readyState === WebSocket.OPEN) upstream.send(data, { binary });
      else early.push({ data, binary });
    });
    upstream.on('open', () => {
      for (const message of early.splice(0)) upstream.send(message.data, { binary: message.binary });
    });
    upstream.on('message', (raw, binary) => {
      let data = toBuffer(raw);
      if (!binary && options.rewriteDownstreamText) data = Buffer.from(options.rewriteDownstreamText(data.toString('utf8')));
      messages.push({ direction: 'downstream', binary, data });
      client.send(data, { binary });
    });
    const end = () => {
      client.terminate();
      upstream.terminate();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const address = server.address();
  if (typeof address === 'string' || address === null) throw new Error('no port');
  return {
    url: `ws://127.0.0.1:${address.port}`,
    messages,
    json: (direction) => messages.filter((m) => m.direction === direction && !m.binary).map((m) => JSON.parse(m.data.toString('utf8')) as Record<string, any>),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of server.clients) socket.terminate();
        server.close(() => resolve());
      }),
  };
}
