import WebSocket from 'ws';

export interface RawMessage {
  id?: string | number;
  method?: string;
  params?: any;
  result?: any;
  error?: { code: number; message: string; data?: unknown };
}

/**
 * A bare WebSocket JSON-RPC peer for protocol tests: sends exactly what it is given and records
 * every message the agent sends back, so tests can assert the wire itself.
 */
export class RawRpcClient {
  readonly received: RawMessage[] = [];
  private nextId = 1;
  private waiters: Array<() => void> = [];
  closed = false;

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      this.received.push(JSON.parse(data.toString()) as RawMessage);
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static async connect(url: string): Promise<RawRpcClient> {
    const socket = new WebSocket(url, { maxPayload: 256 * 1024 * 1024 });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    return new RawRpcClient(socket);
  }

  sendRaw(text: string): void {
    this.socket.send(text);
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
    this.socket.close();
  }
}

export const b64 = (text: string): string => Buffer.from(text).toString('base64');
export const unb64 = (text: string): string => Buffer.from(text, 'base64').toString();
