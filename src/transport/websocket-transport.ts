import WebSocket from 'ws';
import type { MessageTransport } from './message-transport.js';
import { ReceiveGate } from './receive-gate.js';
import { TransportListeners } from './transport-listeners.js';

/**
 * A MessageTransport over one WebSocket: one JSON-RPC message per WebSocket message (text frames,
 * as the codex exec-server uses; binary frames are accepted and decoded as UTF-8, unless a binary
 * listener is set: then each binary frame is a binary message, see `sendBinary`). `send` resolves
 * once ws has written the frame to the socket, so a writer that awaits it feels backpressure.
 */
export class WebSocketTransport implements MessageTransport {
  readonly kind = 'websocket' as const;
  private readonly listeners = new TransportListeners();
  /** The first socket error, or the unclean close code: what the transport closes with. */
  private closeError: Error | undefined;
  private readonly gate: ReceiveGate<string | Uint8Array>;

  constructor(private readonly socket: WebSocket) {
    this.gate = new ReceiveGate<string | Uint8Array>((message) => {
      if (typeof message === 'string') this.listeners.emitMessage(message);
      else this.listeners.emitBinary(message);
    }, socket);
    socket.on('message', (data, isBinary) => {
      if (isBinary && this.listeners.hasBinaryListener) this.gate.accept(rawToBytes(data));
      else this.gate.accept(isBinary || typeof data !== 'string' ? rawToString(data) : data);
    });
    socket.on('error', (error) => {
      this.closeError ??= error;
    });
    socket.on('close', (code, reason) => {
      if (!this.closeError && code !== 1000 && code !== 1005) {
        this.closeError = new Error(`websocket closed with code ${code}${reason.length ? `: ${reason.toString()}` : ''}`);
      }
      this.finish();
    });
    if (socket.readyState === WebSocket.CLOSED) queueMicrotask(() => this.finish());
  }

  get closed(): boolean {
    return this.listeners.closed;
  }

  send(message: string): Promise<void> {
    if (this.listeners.closed || this.socket.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error('transport closed'));
    }
    return new Promise((resolve, reject) => {
      this.socket.send(message, (error) => (error ? reject(error) : resolve()));
    });
  }

  /** One binary WebSocket frame (the `binaryOutput` extension); same ordering and backpressure as `send`. */
  sendBinary(message: Uint8Array | readonly Uint8Array[]): Promise<void> {
    if (this.listeners.closed || this.socket.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error('transport closed'));
    }
    // A WebSocket frame takes one buffer: parts are joined here (one copy, as the sender's encoding would have).
    const whole = message instanceof Uint8Array ? message : message.length === 1 ? message[0]! : Buffer.concat(message);
    return new Promise((resolve, reject) => {
      this.socket.send(whole, { binary: true }, (error) => (error ? reject(error) : resolve()));
    });
  }

  onMessage(listener: (message: string) => void): void {
    this.listeners.onMessage(listener);
  }

  onBinaryMessage(listener: (message: Uint8Array) => void): void {
    this.listeners.onBinaryMessage(listener);
  }

  onClose(listener: (error?: Error) => void): void {
    this.listeners.onClose(listener);
  }

  pauseReceiving(): void {
    this.gate.pause();
  }

  resumeReceiving(): void {
    this.gate.resume();
  }

  close(reason?: string): void {
    if (this.listeners.closed) return;
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) {
      this.socket.close(1000, reason?.slice(0, 120));
      // A peer that never answers the close handshake must not keep us open.
      setTimeout(() => this.socket.terminate(), 2000).unref();
    } else {
      this.finish();
    }
  }

  private finish(): void {
    this.listeners.close(this.closeError);
  }
}

function rawToString(data: WebSocket.RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return data.toString('utf8');
}

function rawToBytes(data: WebSocket.RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return data;
}
