import type { Readable, Writable } from 'node:stream';
import type { MessageTransport } from './message-transport.js';
import { ReceiveGate } from './receive-gate.js';

/**
 * A MessageTransport over a pair of byte streams carrying one JSON object per line (the agent's
 * stdio mode). A line longer than `maxLineBytes` is cut there and the rest of it dropped, so the
 * JSON-RPC layer sees an over-cap message and answers -32600 while memory stays bounded.
 */
export class StdioTransport implements MessageTransport {
  readonly kind = 'stdio' as const;
  private readonly messageListeners: Array<(message: string) => void> = [];
  private readonly closeListeners: Array<(error?: Error) => void> = [];
  private pieces: Buffer[] = [];
  private pieceBytes = 0;
  private discardingOverlongLine = false;
  private isClosed = false;
  private readonly gate: ReceiveGate;

  constructor(
    input: Readable,
    private readonly output: Writable,
    private readonly maxLineBytes: number,
  ) {
    this.gate = new ReceiveGate((line) => {
      for (const listener of this.messageListeners) listener(line);
    }, input);
    input.on('data', (data: Buffer | string) => this.consume(typeof data === 'string' ? Buffer.from(data) : data));
    input.on('end', () => this.finish());
    input.on('error', (error) => this.finish(error));
    output.on('error', (error) => this.finish(error));
  }

  get closed(): boolean {
    return this.isClosed;
  }

  send(message: string): Promise<void> {
    if (this.isClosed) return Promise.reject(new Error('transport closed'));
    return new Promise((resolve, reject) => {
      this.output.write(`${message}\n`, (error) => (error ? reject(error) : resolve()));
    });
  }

  onMessage(listener: (message: string) => void): void {
    this.messageListeners.push(listener);
  }

  onClose(listener: (error?: Error) => void): void {
    if (this.isClosed) queueMicrotask(() => listener());
    else this.closeListeners.push(listener);
  }

  pauseReceiving(): void {
    this.gate.pause();
  }

  resumeReceiving(): void {
    this.gate.resume();
  }

  close(): void {
    this.finish();
  }

  private consume(data: Buffer): void {
    let start = 0;
    while (start < data.length) {
      const newline = data.indexOf(0x0a, start);
      const end = newline === -1 ? data.length : newline;
      this.append(data.subarray(start, end));
      if (newline === -1) break;
      this.emitLine();
      start = newline + 1;
    }
  }

  private append(piece: Buffer): void {
    if (this.discardingOverlongLine || piece.length === 0) return;
    const room = this.maxLineBytes + 1 - this.pieceBytes;
    if (piece.length >= room) {
      this.pieces.push(piece.subarray(0, room));
      this.pieceBytes += room;
      this.discardingOverlongLine = true;
      return;
    }
    this.pieces.push(piece);
    this.pieceBytes += piece.length;
  }

  private emitLine(): void {
    const line = Buffer.concat(this.pieces, this.pieceBytes).toString('utf8');
    this.pieces = [];
    this.pieceBytes = 0;
    this.discardingOverlongLine = false;
    if (line.trim().length === 0) return;
    this.gate.accept(line);
  }

  private finish(error?: Error): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const listener of this.closeListeners.splice(0)) listener(error);
  }
}
