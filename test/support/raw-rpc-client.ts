import WebSocket from 'ws';
import type { MessageTransport } from '../../src/transport/message-transport.js';

export interface RawMessage {
  id?: string | number;
  method?: string;
  params?: any;
  result?: any;
  error?: { code: number; message: string; data?: unknown };
}

/** What the raw client sends its text on: a WebSocket, or any MessageTransport (a codex Noise stream). */
interface RawWire {
  send(text: string): void;
  close(): void;
}

/**
 * A bare JSON-RPC peer for protocol tests: sends exactly what it is given and records every message
 * the agent sends back, so tests can assert the wire itself. On a direct WebSocket
 * ({@link RawRpcClient.connect}) or on an established transport ({@link RawRpcClient.over}: e.g. a
 * codex Noise stream through the relay, which frames each message itself).
 */
export class RawRpcClient {
  readonly received: RawMessage[] = [];
  private nextId = 1;
  private waiters: Array<() => void> = [];
  closed = false;

  private constructor(private readonly wire: RawWire) {}

  private accept(text: string): void {
    this.received.push(JSON.parse(text) as RawMessage);
    for (const w of this.waiters.splice(0)) w();
  }

  private ended(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w();
  }

  static async connect(url: string): Promise<RawRpcClient> {
    const socket = new WebSocket(url, { maxPayload: 256 * 1024 * 1024 });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    const client = new RawRpcClient({ send: (text) => socket.send(text), close: () => socket.close() });
    socket.on('message', (data) => client.accept(data.toString()));
    socket.on('close', () => client.ended());
    return client;
  }

  /** The raw client on an established MessageTransport (each text sent as one message). */
  static over(transport: MessageTransport): RawRpcClient {
    const client = new RawRpcClient({ send: (text) => void transport.send(text).catch(() => undefined), close: () => transport.close() });
    transport.onMessage((text) => client.accept(text));
    transport.onClose(() => client.ended());
    return client;
  }

  sendRaw(text: string): void {
    this.wire.send(text);
  }

  notify(method: string, params?: unknown): void {
    this.sendRaw(JSON.stringify(params === undefined ? { method } : { method, params }));
  }

  /** Sends a request and waits for the response with its id. */
  async request(method: string, params?: unknown, timeoutMs = 10_000): Promise<RawMessage> {
    const id = this.nextId++;
    this.sendRaw(JSON.stringify({ id, method, params }));
    return this.waitFor((m) => m.id === id && m.method === undefined, timeoutMs);
  }

  /** Resolves with the first received message matching `predicate` (past or future). */
  async waitFor(predicate: (m: RawMessage) => boolean, timeoutMs = 10_000): Promise<RawMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.received.find(predicate);
      if (found) return found;
      if (this.closed) throw new Error('socket closed while waiting');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting; received: ${JSON.stringify(this.received).slice(0, 2000)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  notifications(processId: string): RawMessage[] {
    return this.received.filter((m) => m.method?.startsWith('process/') && m.params?.processId === processId);
  }

  async initialize(resumeSessionId?: string): Promise<string> {
    const response = await this.request('initialize', { clientName: 'raw-test', ...(resumeSessionId ? { resumeSessionId } : {}) });
    if (response.error) throw new Error(`initialize failed: ${response.error.message}`);
    this.notify('initialized', {});
    return response.result.sessionId as string;
  }

  close(): void {
    this.wire.close();
  }
}

export const b64 = (text: string): string => Buffer.from(text).toString('base64');
export const unb64 = (text: string): string => Buffer.from(text, 'base64').toString();
